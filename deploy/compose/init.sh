#!/bin/sh
# Prepares the demo volume: development certificates, a synthetic datalager, and for every
# region a secret for the cell key method and a development policy. Runs once.
set -eu
if [ -f /data/ready ]; then exit 0; fi
norrsken certs dev --out /data/certs --coordinator-names coordinator
norrsken synth --out /data/datalager --scale "${NORRSKEN_DEMO_SCALE:-0.25}" --quiet
mkdir -p /data/policies
for r in 22 23 24 25; do
    head -c 64 /dev/urandom > "/data/policies/region-$r.key"
    sed "s/@REGION@/$r/" /deploy/compose/policy.toml > "/data/policies/policy-$r.toml"
done
touch /data/ready
