{{/* Which optional parts are on; RBAC and the pod spec follow from these. */}}

{{/* podtier manages its own certificate Secret and the webhooks' caBundle. */}}
{{- define "podtier.managesCerts" -}}
{{- ternary "true" "" (eq .Values.certs.mode "self") -}}
{{- end -}}

{{/* The process talks to the API server at all (else no token is mounted). */}}
{{- define "podtier.needsApiAccess" -}}
{{- ternary "true" "false" (or .Values.headroom.enabled .Values.cleanup.enabled (eq .Values.certs.mode "self")) -}}
{{- end -}}
