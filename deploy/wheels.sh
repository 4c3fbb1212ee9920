#!/usr/bin/env bash
# Fills deploy/wheelhouse/ with every wheel the image installs (pyproject's dependencies and its
# server and pipeline extras, plus setuptools and wheel to build the project), for an image build that needs no index
# (--build-arg PIP_NO_INDEX=1). pip runs inside the Containerfile's `pip` stage, so the
# dependencies are resolved by the image's own interpreter (Debian 12's Python 3.11.2: a marker
# such as python_full_version < "3.11.3" gives other wheels than a newer host Python).
# The host's CA bundle is handed to pip where the network's TLS needs it; pip's cache lives in
# deploy/.local/pip-cache, so a second run downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
podman=(podman)
image=localhost/usdcop-observation:pip
"${podman[@]}" build --quiet -f deploy/Containerfile --target pip -t "$image" . >/dev/null
mkdir -p deploy/wheelhouse deploy/.local/pip-cache
ca=()
host_ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$host_ca" ]; then
  ca=(-v "$host_ca:/etc/ssl/certs/host-ca.crt:ro" -e PIP_CERT=/etc/ssl/certs/host-ca.crt)
fi
"${podman[@]}" run --rm --network host "${ca[@]}" \
  -v "$PWD/deploy/wheelhouse:/wheels" -v "$PWD/deploy/.local/pip-cache:/pip-cache" \
  -v "$PWD/pyproject.toml:/src/pyproject.toml:ro" -e PIP_CACHE_DIR=/pip-cache \
  -e PIP_DISABLE_PIP_VERSION_CHECK=1 "$image" sh -c '
    set -e
    python3 -m venv /tmp/venv
    python3 -c "import tomllib; p = tomllib.load(open(\"/src/pyproject.toml\", \"rb\"))[\"project\"]; x = p[\"optional-dependencies\"]; print(\"\n\".join(p[\"dependencies\"] + x[\"server\"] + x[\"pipeline\"]))" > /tmp/requirements.txt
    /tmp/venv/bin/pip download --quiet --dest /wheels --only-binary=:all: -r /tmp/requirements.txt "setuptools>=77" wheel
  '
echo "deploy/wheelhouse: $(ls deploy/wheelhouse/*.whl | wc -l) wheels, $(du -sh deploy/wheelhouse | cut -f1)"
