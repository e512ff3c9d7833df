package kube

func newRoutes(c *Controller) component { return newStub() }
