{{/* Names: every object name the chart makes comes from here. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "podtier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name: fullnameOverride, else the release name (when it already contains the chart
name), else "<release>-<chart>". Truncated to 63 characters, the DNS label limit.
*/}}
{{- define "podtier.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "podtier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A name with a suffix, kept within 63 characters. */}}
{{- define "podtier.suffixed" -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "podtier.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "podtier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "podtier.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Service the API server calls; its DNS names are in the serving certificate. */}}
{{- define "podtier.serviceName" -}}
{{- include "podtier.fullname" . -}}
{{- end -}}

{{/* Cluster-scoped webhook configuration names carry the namespace: two releases may coexist. */}}
{{- define "podtier.mutatingWebhookName" -}}
{{- printf "%s-%s" .Release.Namespace (include "podtier.fullname" .) | trimPrefix "-" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podtier.validatingWebhookName" -}}
{{- printf "%s-%s" .Release.Namespace (include "podtier.fullname" .) | trimPrefix "-" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Cluster-scoped RBAC names carry the namespace too. */}}
{{- define "podtier.clusterRoleName" -}}
{{- $suffix := index . 1 -}}
{{- $ctx := index . 0 -}}
{{- printf "%s-%s" (printf "%s-%s" $ctx.Release.Namespace (include "podtier.fullname" $ctx) | trimPrefix "-" | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{/* The Secret holding tls.crt, tls.key (and ca.crt). */}}
{{- define "podtier.certSecretName" -}}
{{- if eq .Values.certs.mode "secret" -}}
{{- .Values.certs.secret.name -}}
{{- else -}}
{{- include "podtier.suffixed" (list . "tls") -}}
{{- end -}}
{{- end -}}

{{- define "podtier.admissionPolicyName" -}}
{{- include "podtier.suffixed" (list . "limits") -}}
{{- end -}}

{{- define "podtier.escalationKeySecretName" -}}
{{- include "podtier.suffixed" (list . "escalation-key") -}}
{{- end -}}

{{- define "podtier.policiesConfigMapName" -}}
{{- include "podtier.suffixed" (list . "policies") -}}
{{- end -}}

{{- define "podtier.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}
