{{/* The parts both webhook configurations share. */}}

{{/*
clientConfig: the Service on 443 and a path. caBundle comes from values in secret mode only;
in self mode podtier patches it in, in cert-manager mode the cainjector does (both left out here so
an upgrade never blanks it).
*/}}
{{- define "podtier.clientConfig" -}}
{{- $ctx := index . 0 -}}
clientConfig:
  service:
    name: {{ include "podtier.serviceName" $ctx }}
    namespace: {{ $ctx.Release.Namespace }}
    path: {{ index . 1 }}
    port: {{ $ctx.Values.service.port }}
  {{- if eq $ctx.Values.certs.mode "secret" }}
  {{- $ca := $ctx.Values.certs.secret.caBundle | trim }}
  caBundle: {{ ternary ($ca | b64enc) $ca (hasPrefix "-----BEGIN" $ca) }}
  {{- end }}
{{- end -}}

{{/*
Which pods: CREATE of pods only, admission.k8s.io/v1, no side effects (podtier writes nothing to
the cluster while admitting, so dry-run requests are safe), and a bounded timeout.
*/}}
{{- define "podtier.webhookCommon" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["pods"]
    scope: Namespaced
{{ include "podtier.namespaceSelector" . }}
{{- with .Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $conditions := include "podtier.matchConditions" . | trim }}
{{- if $conditions }}
matchConditions:
  {{- $conditions | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
namespaceSelector: never the release namespace nor kube-system (a broken podtier must not block
the pods that would repair it), never webhook.excludeNamespaces, and only webhook.namespaces when
listed. kubernetes.io/metadata.name is set by the API server on every namespace.
*/}}
{{- define "podtier.namespaceSelector" -}}
{{- $v := .Values.webhook -}}
{{- $excluded := concat (list .Release.Namespace "kube-system") $v.excludeNamespaces | uniq -}}
namespaceSelector:
  {{- with $v.namespaceSelector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- toYaml $excluded | nindent 8 }}
    {{- with $v.namespaces }}
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- toYaml . | nindent 8 }}
    {{- end }}
    {{- with $v.namespaceSelector.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
matchConditions: objectSelector ANDs its terms, so it cannot say "label A or label B or label C";
CEL can. The expression guards every lookup with has()/`in`, so it never errors (an error would
fall back to failurePolicy). It mirrors the default policy's `airflowPods`.
*/}}
{{- define "podtier.matchConditions" -}}
{{- if .Values.webhook.airflowPodsOnly }}
- name: airflow-pods
  expression: >-
    has(object.metadata.labels) && (
    ('kubernetes_executor' in object.metadata.labels && object.metadata.labels['kubernetes_executor'] == 'True') ||
    'airflow-worker' in object.metadata.labels ||
    ('kubernetes_pod_operator' in object.metadata.labels && object.metadata.labels['kubernetes_pod_operator'] == 'True'))
{{- end }}
{{- with .Values.webhook.matchConditions }}
{{ toYaml . }}
{{- end }}
{{- end -}}
