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

{{/* The ValidatingAdmissionPolicy is rendered: `true`, or `auto` and the cluster serves it. */}}
{{- define "podtier.admissionPolicy" -}}
{{- $on := .Values.admissionPolicy.enabled -}}
{{- $served := .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" -}}
{{- ternary "true" "" (or (eq (toString $on) "true") (and (eq (toString $on) "auto") $served)) -}}
{{- end -}}

{{/* podtier keeps the admission policy's parameters equal to its policy (a live cluster watch). */}}
{{- define "podtier.writesAdmissionParams" -}}
{{- ternary "true" "" (and (eq (include "podtier.admissionPolicy" .) "true") .Values.headroom.enabled) -}}
{{- end -}}

{{/* One replica at a time does a job (cleanup, learning, admission policy parameters): it
needs the leader Lease. */}}
{{- define "podtier.needsLeader" -}}
{{- ternary "true" "" (or .Values.cleanup.enabled (eq (include "podtier.learning" .) "true") (eq (include "podtier.writesAdmissionParams" .) "true")) -}}
{{- end -}}
