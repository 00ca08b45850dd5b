{{/* The flags of `podtier serve` (the image's ENTRYPOINT), one per line. */}}
{{- define "podtier.serveArgs" -}}
- --cert-dir=/var/run/podtier/certs
- --host=0.0.0.0
- --port={{ .Values.service.targetPort }}
- --policy=/etc/podtier/policies
- --escalation-key=/etc/podtier/escalation-key/key
{{- if .Values.headroom.enabled }}
- --cluster=auto
- --stale-after={{ .Values.headroom.staleAfterSeconds }}
- --peers={{ include "podtier.fullname" . }}
{{- if .Values.headroom.namespaceLabels }}
- --namespace-labels
{{- end }}
{{- else }}
- --cluster=none
{{- end }}
- --log-level={{ .Values.logLevel }}
{{- if gt (int .Values.metrics.port) 0 }}
- --metrics-port={{ .Values.metrics.port }}
{{- end }}
{{- if include "podtier.managesCerts" . }}
- --manage-certs
- --cert-secret={{ include "podtier.certSecretName" . }}
- --namespace={{ .Release.Namespace }}
- --service={{ include "podtier.serviceName" . }}
- --mutating-webhook={{ include "podtier.mutatingWebhookName" . }}
- --validating-webhook={{ include "podtier.validatingWebhookName" . }}
{{- end }}
{{- if include "podtier.writesAdmissionParams" . }}
- --admission-policy-params={{ include "podtier.admissionPolicyName" . }}
{{- end }}
{{- if .Values.cleanup.enabled }}
- --cleanup-after={{ .Values.cleanup.after }}
{{- end }}
{{- if include "podtier.learning" . }}
- --learning
{{- with .Values.learning.prometheusURL }}
- --usage-prometheus={{ . }}
{{- end }}
{{- end }}
{{- with .Values.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end -}}
