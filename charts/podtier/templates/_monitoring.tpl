{{/*
Scraping: how Prometheus reaches podtier's /metrics, shared by the ServiceMonitor, the
PodMonitor and the prometheus.io/* pod annotations. With `metrics.port` set, the plain-HTTP
listener; otherwise the HTTPS port, verified against the CA in the serving Secret (`ca.crt`)
under the Service's DNS name (the name the serving certificate carries).
*/}}

{{- define "podtier.metricsPortName" -}}
{{- if gt (int .Values.metrics.port) 0 }}metrics{{ else }}https{{ end -}}
{{- end -}}

{{- define "podtier.metricsPortNumber" -}}
{{- if gt (int .Values.metrics.port) 0 }}{{ .Values.metrics.port }}{{ else }}{{ .Values.service.targetPort }}{{ end -}}
{{- end -}}

{{- define "podtier.metricsScheme" -}}
{{- if gt (int .Values.metrics.port) 0 }}http{{ else }}https{{ end -}}
{{- end -}}

{{/* One scrape endpoint of a monitor: (list $ctx $monitorValues). */}}
{{- define "podtier.monitorEndpoint" -}}
{{- $ctx := index . 0 -}}
{{- $monitor := index . 1 -}}
port: {{ include "podtier.metricsPortName" $ctx }}
path: /metrics
scheme: {{ include "podtier.metricsScheme" $ctx }}
interval: {{ $monitor.interval }}
scrapeTimeout: {{ $monitor.scrapeTimeout }}
honorLabels: {{ $monitor.honorLabels }}
{{- if eq (include "podtier.metricsScheme" $ctx) "https" }}
tlsConfig:
  {{- if $monitor.tlsConfig }}
  {{- toYaml $monitor.tlsConfig | nindent 2 }}
  {{- else }}
  ca:
    secret:
      name: {{ include "podtier.certSecretName" $ctx }}
      key: ca.crt
  serverName: {{ printf "%s.%s.svc" (include "podtier.serviceName" $ctx) $ctx.Release.Namespace }}
  {{- end }}
{{- end }}
relabelings:
  # The shipped alerts and dashboard select job="podtier".
  - targetLabel: job
    replacement: podtier
  {{- with $monitor.relabelings }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $monitor.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The prometheus.io/* pod annotations, when `metrics.annotations` is on. */}}
{{- define "podtier.scrapeAnnotations" -}}
{{- if .Values.metrics.annotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ include "podtier.metricsPortNumber" . | quote }}
prometheus.io/path: /metrics
prometheus.io/scheme: {{ include "podtier.metricsScheme" . }}
{{- end -}}
{{- end -}}
