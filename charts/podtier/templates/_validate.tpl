{{/*
Refuse values that contradict each other, with a message saying what to set. The schema
(values.schema.json) already refuses wrong types, out-of-range numbers and unknown enum values;
these are the checks that need more than one value at a time.
*/}}
{{- define "podtier.validateValues" -}}
{{- $v := .Values -}}
{{- $mode := $v.certs.mode -}}
{{- if eq $mode "secret" -}}
  {{- if not $v.certs.secret.name -}}
    {{- fail "certs.mode=secret needs certs.secret.name: the name of an existing kubernetes.io/tls Secret (tls.crt, tls.key) in the release namespace" -}}
  {{- end -}}
  {{- if not $v.certs.secret.caBundle -}}
    {{- fail "certs.mode=secret needs certs.secret.caBundle: the PEM of the CA that signed the certificate in certs.secret.name (the API server trusts only that CA)" -}}
  {{- end -}}
{{- else if or $v.certs.secret.name $v.certs.secret.caBundle -}}
  {{- fail (printf "certs.secret.name/caBundle are set but certs.mode is %q: set certs.mode=secret to use your own Secret, or unset certs.secret.*" $mode) -}}
{{- end -}}
{{- if and (ne $mode "cert-manager") $v.certs.certManager.issuerRef -}}
  {{- fail (printf "certs.certManager.issuerRef is set but certs.mode is %q: set certs.mode=cert-manager to use that issuer, or unset certs.certManager.issuerRef" $mode) -}}
{{- end -}}
{{- if and (eq $mode "cert-manager") $v.certs.certManager.issuerRef (not $v.certs.certManager.issuerRef.name) -}}
  {{- fail "certs.certManager.issuerRef needs a name (and kind Issuer or ClusterIssuer), or leave it {} for a CA the chart makes for podtier" -}}
{{- end -}}
{{- if and $v.learning.prometheusURL (not (include "podtier.learning" .)) -}}
  {{- fail "learning.prometheusURL is set but learning is off: it needs learning.enabled=true and headroom.enabled=true" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled $v.metrics.podMonitor.enabled -}}
  {{- fail "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled are both true: each replica would be scraped twice and every podtier sum counted double; keep one" -}}
{{- end -}}
{{- if and $v.cleanup.enabled (not $v.headroom.enabled) -}}
  {{- fail "cleanup.enabled=true needs headroom.enabled=true: cleanup finds finished pods through the same cluster watch" -}}
{{- end -}}
{{- range $ns := $v.webhook.namespaces -}}
  {{- if or (eq $ns $.Release.Namespace) (eq $ns "kube-system") -}}
    {{- fail (printf "webhook.namespaces must not list %q: podtier never admits pods of its own namespace or kube-system, so it cannot block its own recovery; run Airflow in another namespace" $ns) -}}
  {{- end -}}
  {{- if has $ns $v.webhook.excludeNamespaces -}}
    {{- fail (printf "namespace %q is in both webhook.namespaces and webhook.excludeNamespaces: keep it in one" $ns) -}}
  {{- end -}}
{{- end -}}
{{- if and (not $v.policies.default) (empty $v.policies.extra) -}}
  {{- fail "policies.default=false and policies.extra is empty: podtier needs at least one policy; keep policies.default=true or add your own under policies.extra" -}}
{{- end -}}
{{- if and $v.policies.mode (not $v.policies.default) -}}
  {{- fail "policies.mode overrides the shipped default policy, but policies.default=false: set `mode:` in your own policy files under policies.extra instead" -}}
{{- end -}}
{{- if kindIs "map" $v.policies.extra -}}
  {{- range $file, $_ := $v.policies.extra -}}
    {{- if not (regexMatch "^[-._a-zA-Z0-9]+\\.yaml$" $file) -}}
      {{- fail (printf "policies.extra: file name %q must end in .yaml and use only letters, digits, '-', '_' and '.' (podtier loads *.yaml from the policy directory)" $file) -}}
    {{- end -}}
    {{- if and $v.policies.default (eq $file "default.yaml") -}}
      {{- fail "policies.extra has a file named default.yaml, which is the shipped default policy's name: rename it, or set policies.default=false to replace the default" -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- if and $v.podDisruptionBudget.enabled (ge (int $v.replicaCount) 2) (ge (int $v.podDisruptionBudget.minAvailable) (int $v.replicaCount)) -}}
  {{- fail (printf "podDisruptionBudget.minAvailable=%v must be below replicaCount=%v, or no node could ever be drained" $v.podDisruptionBudget.minAvailable $v.replicaCount) -}}
{{- end -}}
{{- if and (gt (int $v.preStopSleepSeconds) 0) (le (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds)) -}}
  {{- fail (printf "terminationGracePeriodSeconds=%v must exceed preStopSleepSeconds=%v, or the pod is killed before it can finish its requests" $v.terminationGracePeriodSeconds $v.preStopSleepSeconds) -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (empty $v.networkPolicy.apiServerCIDRs) -}}
  {{- fail "networkPolicy.enabled=true needs networkPolicy.apiServerCIDRs: the API server's addresses as pods see them (kubectl get endpoints kubernetes -n default); without them the policy would block the API server's calls" -}}
{{- end -}}
{{- if eq (int $v.metrics.port) (int $v.service.targetPort) -}}
  {{- fail (printf "metrics.port=%v is the HTTPS port service.targetPort: choose another port, or 0 to serve /metrics on the HTTPS port only" $v.metrics.port) -}}
{{- end -}}
{{- end -}}
