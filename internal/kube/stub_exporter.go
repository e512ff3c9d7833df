package kube

func newExporter(c *Controller) component { return newStub() }
