{{/* Which optional parts are on; RBAC and the pod spec follow from these. */}}

{{/* podtier manages its own certificate Secret and the webhooks' caBundle. */}}
{{- define "podtier.managesCerts" -}}
{{- ternary "true" "" (eq .Values.certs.mode "self") -}}
{{- end -}}

{{/* The process talks to the API server at all (else no token is mounted). */}}
{{- define "podtier.needsApiAccess" -}}
{{- ternary "true" "false" (or .Values.headroom.enabled .Values.cleanup.enabled (eq .Values.certs.mode "self")) -}}
{{- end -}}

{{/* Learning runs: asked for, and the cluster watch it rides is on. */}}
{{- define "podtier.learning" -}}
{{- ternary "true" "" (and .Values.learning.enabled .Values.headroom.enabled) -}}
{{- end -}}

{{/* One replica at a time does a job (cleanup, learning): it needs the leader Lease. */}}
{{- define "podtier.needsLeader" -}}
{{- ternary "true" "" (or .Values.cleanup.enabled (eq (include "podtier.learning" .) "true")) -}}
{{- end -}}
