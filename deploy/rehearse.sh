#!/usr/bin/env bash
# Rehearses docs/deploy.md on one machine: the steps a region's IT department takes to put
# an agent next to its PostgreSQL warehouse, in a scratch folder instead of /etc and /var.
#
#   1. request a certificate (CSR) and have the CA sign it (here: a development CA);
#   2. build a warehouse with the region's own names and codes (deploy/examples/
#      unlike-warehouse.sql over a synthetic extract) and a read-only database role;
#   3. write the policy, the cell-key secret and the audit signing key;
#   4. write the agent configuration from deploy/examples/agent-postgres-mapped.toml;
#   5. norrsken-agent check-config and norrsken eval on the warehouse; start the agent;
#   6. a coordinator that knows the agent: check-config, then a test query as an analyst;
#   7. reload on SIGHUP, stop with SIGTERM, verify the agent's audit log.
#
# Needs PostgreSQL reachable as a superuser (default: host=127.0.0.1 user=postgres) to create
# the rehearsal database and role; both are dropped at the end. Environment:
#   NORRSKEN_BIN_DIR   folder with norrsken, norrsken-agent, norrsken-coordinator (default: PATH)
#   REHEARSAL_DIR      scratch folder (default: a new temporary folder, removed at the end)
#   PG_ADMIN           libpq string for the superuser (default: "host=127.0.0.1 user=postgres")
#   PG_DATABASE        database to create (default: norrsken_rehearsal)
#   PG_ROLE            read-only role to create (default: norrsken_ro_rehearsal)
#   SCALE              synthetic population scale (default: 0.05)
#   AGENT_PORT, COORDINATOR_PORT (default: 50061, 50060)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${NORRSKEN_BIN_DIR:-}" ]; then PATH="$(cd "$NORRSKEN_BIN_DIR" && pwd):$PATH"; fi
export PGOPTIONS="-c client_min_messages=warning"
pg_admin="${PG_ADMIN:-host=127.0.0.1 user=postgres}"
db="${PG_DATABASE:-norrsken_rehearsal}"
role="${PG_ROLE:-norrsken_ro_rehearsal}"
scale="${SCALE:-0.05}"
agent_port="${AGENT_PORT:-50061}"
coordinator_port="${COORDINATOR_PORT:-50060}"
keep_dir=1
if [ -z "${REHEARSAL_DIR:-}" ]; then REHEARSAL_DIR="$(mktemp -d)"; keep_dir=0; fi
w="$(mkdir -p "$REHEARSAL_DIR" && cd "$REHEARSAL_DIR" && pwd)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    psql "$pg_admin dbname=postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    psql "$pg_admin dbname=postgres" -qc "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
    if [ "$keep_dir" = 0 ]; then rm -rf "$w"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
# Waits for a server's "listening on" line (a bare TCP probe would be logged as a refused
# TLS handshake).
wait_listening() {
    for _ in $(seq 1 400); do
        grep -q "listening on" "$1" && return 0
        sleep 0.05
    done
    echo "the server did not start; its log ($1):" >&2
    cat "$1" >&2
    return 1
}
mkdir -p "$w"/{ca,etc/tls,var/audit,coordinator}

step "0. The federation's CA (the coordinator operator runs it; here a development CA)"
norrsken certs dev --out "$w/ca" >/dev/null
echo "CA and the coordinator's and an analyst's certificates in $w/ca"

step "1. Request a certificate for the agent and have the CA sign it"
norrsken certs request --cn agent-23 --organisation "Region Jämtland Härjedalen" \
    --names norrsken-agent.regionjh.example,127.0.0.1 --out "$w/etc/tls"
norrsken certs sign --ca "$w/ca/ca.pem" --ca-key "$w/ca/ca.key" --csr "$w/etc/tls/agent-23.csr" \
    --usage server --out "$w/etc/tls/agent-23.pem"
cp "$w/ca/ca.pem" "$w/etc/tls/ca.pem"

step "2. The region's warehouse (own names and codes) and a read-only role"
psql "$pg_admin dbname=postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
norrsken synth --out "$w/extract" --scale "$scale" --regions 23 --quiet --postgres "$pg_admin dbname=$db"
psql "$pg_admin dbname=$db" -q -v ON_ERROR_STOP=1 -c "ALTER SCHEMA norrsken_23 RENAME TO cdm" \
    -f "$here/examples/unlike-warehouse.sql" -c "DROP SCHEMA cdm CASCADE" >"$w/warehouse.log" 2>&1 \
    || { cat "$w/warehouse.log" >&2; exit 1; }
psql "$pg_admin dbname=$db" -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role LOGIN; END IF; END \$\$;
GRANT CONNECT ON DATABASE $db TO $role;
GRANT USAGE ON SCHEMA dw TO $role;
GRANT SELECT ON ALL TABLES IN SCHEMA dw TO $role;
ALTER ROLE $role SET default_transaction_read_only = on;
SQL
psql "$pg_admin dbname=$db" -tAc "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dw' ORDER BY 1" | paste -sd' '

step "3. Policy, cell-key secret, audit signing key"
cp "$here/examples/policy.toml" "$w/etc/policy.toml"
head -c 64 /dev/urandom > "$w/etc/region.key"
chmod 600 "$w/etc/region.key"
norrsken audit keygen --out "$w/etc/audit.pem"

step "4. Agent configuration (from deploy/examples/agent-postgres-mapped.toml)"
sed -e "s#0.0.0.0:50051#127.0.0.1:$agent_port#" -e "s#/etc/norrsken/#$w/etc/#g" -e "s#/var/lib/norrsken/#$w/var/#g" \
    -e "s#^url = .*#url = \"host=127.0.0.1 port=5432 user=$role dbname=$db sslmode=disable\"#" \
    -e '/^password_file/d' -e '/^crls/d' -e 's#tls/agent\.#tls/agent-23.#' \
    "$here/examples/agent-postgres-mapped.toml" > "$w/etc/agent.toml"
grep -E '^(region|listen|url|schema) ' "$w/etc/agent.toml"

step "5. norrsken-agent check-config, then start the agent"
norrsken-agent --config "$w/etc/agent.toml" check-config | sed -n '/^Checks:/,$p'
echo "Raw cells of one recipe on the mapped warehouse (for the region's own eyes, before disclosure control):"
norrsken eval stroke_reperfusion --config "$w/etc/agent.toml" --period 2021..2025 --by sex 2>&1
norrsken-agent --config "$w/etc/agent.toml" 2>"$w/agent.log" &
pids+=($!)
agent_pid=$!
wait_listening "$w/agent.log"
echo "agent running (pid $agent_pid)"

step "6. The coordinator knows the agent; check-config, then a test query as an analyst"
cat > "$w/coordinator/coordinator.toml" <<TOML
listen = "127.0.0.1:$coordinator_port"
[tls]
cert = "$w/ca/coordinator.pem"
key = "$w/ca/coordinator.key"
ca = "$w/ca/ca.pem"
[audit]
dir = "$w/coordinator/audit"
signing_key = "$w/coordinator/audit.pem"
[[agents]]
region = "23"
name = "Jämtland Härjedalen"
url = "https://127.0.0.1:$agent_port"
domain = "norrsken-agent.regionjh.example"
[[clients]]
cn = "analyst"
role = "analyst"
TOML
norrsken-coordinator --config "$w/coordinator/coordinator.toml" check-config | sed -n '/^Checks:/,$p'
norrsken-coordinator --config "$w/coordinator/coordinator.toml" 2>"$w/coordinator.log" &
pids+=($!)
wait_listening "$w/coordinator.log"
connect=(--coordinator "https://127.0.0.1:$coordinator_port" --ca "$w/ca/ca.pem" --cert "$w/ca/analyst.pem" --key "$w/ca/analyst.key")
norrsken query kpp_cost --by care_type --period 2024 "${connect[@]}"
norrsken query stroke_reperfusion --period 2021..2025 "${connect[@]}"

step "7. Reload on SIGHUP, stop with SIGTERM, verify the audit log"
kill -HUP "$agent_pid"
for _ in $(seq 1 100); do grep -q "reloaded on SIGHUP" "$w/agent.log" && break; sleep 0.05; done
grep -o "reloaded on SIGHUP.*" "$w/agent.log" | sed 's/\x1b\[[0-9;]*m//g'
kill -TERM "$agent_pid"
wait "$agent_pid"
echo "agent stopped cleanly"
norrsken audit verify "$w/var/audit" --key "$w/etc/audit.pem.pub"
norrsken audit show "$w/var/audit" | cut -c1-160
echo
echo "Rehearsal complete: an agent on PostgreSQL answered the coordinator."
