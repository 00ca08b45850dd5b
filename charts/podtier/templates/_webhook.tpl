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
Which pods, admission.k8s.io/v1, no side effects (podtier writes nothing to the cluster while
admitting, so dry-run requests are safe), and a bounded timeout. The mutating webhook sees pod
CREATEs only; the validating one also UPDATEs of a pod and its `resize` subresource (in-place
resize: a plain UPDATE on 1.27-1.32 with InPlacePodVerticalScaling, pods/resize from 1.33), so a
running pod cannot be resized past its limits. Call with (list . "mutate") or (list . "validate").
*/}}
{{- define "podtier.webhookCommon" -}}
{{- $ctx := index . 0 -}}
{{- $validate := eq (index . 1) "validate" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
timeoutSeconds: {{ $ctx.Values.webhook.timeoutSeconds }}
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    {{- if $validate }}
    operations: ["CREATE", "UPDATE"]
    resources: ["pods", "pods/resize"]
    {{- else }}
    operations: ["CREATE"]
    resources: ["pods"]
    {{- end }}
    scope: Namespaced
{{ include "podtier.namespaceSelector" $ctx }}
{{- with $ctx.Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $conditions := include "podtier.matchConditions" (list $ctx $validate) | trim }}
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
fall back to failurePolicy). It mirrors the default policy's `airflowPods`. For the validating
webhook an UPDATE is sent only when the pod's spec or podtier's own annotations change (labels,
other annotations and Airflow's own patches never wait on podtier, even while it is down), and an
Airflow pod stays one when an UPDATE drops its labels (the old object counts too).
*/}}
{{- define "podtier.matchConditions" -}}
{{- $ctx := index . 0 -}}
{{- $validate := index . 1 -}}
{{- if $validate }}
- name: spec-or-podtier-annotations-change
  expression: >-
    request.operation != 'UPDATE' || object.spec != oldObject.spec ||
    (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('podtier.io/') &&
    !(has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations &&
    oldObject.metadata.annotations[k] == object.metadata.annotations[k]))) ||
    (has(oldObject.metadata.annotations) && oldObject.metadata.annotations.exists(k, k.startsWith('podtier.io/') &&
    !(has(object.metadata.annotations) && k in object.metadata.annotations)))
{{- end }}
{{- if $ctx.Values.webhook.airflowPodsOnly }}
{{- $expression := include "podtier.airflowPodsCEL" "object" }}
{{- if $validate }}
{{- $expression = printf "%s ||\n(request.operation == 'UPDATE' && %s)" $expression (include "podtier.airflowPodsCEL" "oldObject") }}
{{- end }}
- name: airflow-pods
  expression: >-
    {{- $expression | nindent 4 }}
{{- end }}
{{- with $ctx.Values.webhook.matchConditions }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The default policy's `airflowPods` in CEL, on the object named by the argument. */}}
{{- define "podtier.airflowPodsCEL" -}}
(has({{ . }}.metadata.labels) && (
('kubernetes_executor' in {{ . }}.metadata.labels && {{ . }}.metadata.labels['kubernetes_executor'] == 'True') ||
'airflow-worker' in {{ . }}.metadata.labels ||
('kubernetes_pod_operator' in {{ . }}.metadata.labels && {{ . }}.metadata.labels['kubernetes_pod_operator'] == 'True')))
{{- end -}}
