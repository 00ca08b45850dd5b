{{/* Labels: the app.kubernetes.io/* set on every object, and the selector subset. */}}

{{- define "podtier.labels" -}}
helm.sh/chart: {{ include "podtier.chart" . }}
{{ include "podtier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: podtier
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels: name and instance only, so they never change on upgrade. */}}
{{- define "podtier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podtier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
