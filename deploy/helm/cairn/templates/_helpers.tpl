{{/*
Names. Every object name comes from the release through these, so two
releases never collide; names are cut to 63 characters (DNS labels), less
the longest suffix the chart adds ("-headless", "-gateway").
*/}}

{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cairn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The client Service (API, Eureka, DNS): the release's full name. */}}
{{- define "cairn.serverService" -}}
{{- include "cairn.fullname" . -}}
{{- end -}}

{{/* The headless Service the StatefulSet's pods get their DNS names from. */}}
{{- define "cairn.headlessService" -}}
{{- printf "%s-headless" (include "cairn.fullname" .) -}}
{{- end -}}

{{- define "cairn.gatewayName" -}}
{{- printf "%s-gateway" (include "cairn.fullname" .) -}}
{{- end -}}

{{- define "cairn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cairn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cairn.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Labels. cairn.labels goes on every object; cairn.selectorLabels (with a
component) selects one workload's pods and never changes after an install,
since a StatefulSet's or Deployment's selector is immutable.
*/}}
{{- define "cairn.labels" -}}
helm.sh/chart: {{ include "cairn.chart" . }}
app.kubernetes.io/name: {{ include "cairn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cairn
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: include with (dict "ctx" $ "component" "server"). */}}
{{- define "cairn.componentLabels" -}}
{{ include "cairn.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The address written to Ingress and Gateway status: the value when set,
else the gateway Service's cluster DNS name when the chart runs a gateway.
*/}}
{{- define "cairn.statusAddress" -}}
{{- if .Values.kubernetes.statusAddress -}}
{{- .Values.kubernetes.statusAddress -}}
{{- else if .Values.gateway.enabled -}}
{{- printf "%s.%s.svc.%s" (include "cairn.gatewayName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{/*
Pod anti-affinity that prefers one pod of a component per node, unless the
user gave an affinity of their own: include with (dict "ctx" $ "component"
"server" "values" .Values.server).
*/}}
{{- define "cairn.affinity" -}}
{{- if .values.affinity -}}
{{ toYaml .values.affinity }}
{{- else if .values.podAntiAffinity -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "cairn.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end -}}
{{- end -}}

{{/*
Checks across values that values.schema.json cannot express: objects the
API server would accept but that could not work.
*/}}
{{- define "cairn.validate" -}}
{{- if and .Values.gateway.tls.enabled (not .Values.gateway.tls.secretName) -}}
{{- fail "gateway.tls.secretName is required when gateway.tls.enabled" -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- end -}}
