#!/usr/bin/env python3
"""Query Norrsken from Python with a standard Arrow Flight client.

Lists the indicators, then fetches a cross-region comparison into a pandas DataFrame.
Authentication is mutual TLS with a client certificate; set

    NORRSKEN_COORDINATOR   e.g. https://127.0.0.1:50050
    NORRSKEN_CERT          client certificate (PEM), e.g. demo-run/certs/analyst.pem
    NORRSKEN_KEY           client private key (PEM)
    NORRSKEN_CA            CA bundle (PEM)
    NORRSKEN_SERVER_NAME   name in the coordinator's certificate (default coordinator.norrsken.local)

Needs: pip install pyarrow pandas
"""
import json
import os
import sys

import pyarrow.flight as flight


def connect() -> flight.FlightClient:
    url = os.environ.get("NORRSKEN_COORDINATOR", "https://127.0.0.1:50050")
    location = url.replace("https://", "grpc+tls://", 1)

    def read(var: str) -> bytes:
        path = os.environ.get(var)
        if not path:
            sys.exit(f"set {var} (see the top of this script)")
        with open(path, "rb") as f:
            return f.read()

    return flight.FlightClient(
        location,
        tls_root_certs=read("NORRSKEN_CA"),
        cert_chain=read("NORRSKEN_CERT"),
        private_key=read("NORRSKEN_KEY"),
        override_hostname=os.environ.get("NORRSKEN_SERVER_NAME", "coordinator.norrsken.local"),
    )


def main() -> None:
    client = connect()

    # 1. The indicators: one flight per recipe, and the full catalog as JSON.
    print("Indicators:")
    for info in client.list_flights():
        indicator_id, version = (p.decode() for p in info.descriptor.path)
        print(f"  {indicator_id:<30} v{version}")
    catalog = json.loads(next(iter(client.do_action(flight.Action("catalog", b"")))).body.to_pybytes())
    print(f"catalog hash {catalog['catalog_hash'][:16]}, {len(catalog['recipes'])} recipes\n")

    # 2. A comparison. The ticket is the query in JSON (see docs/protocol.md).
    query = {
        "indicator": sys.argv[1] if len(sys.argv) > 1 else "stroke_reperfusion",
        "breakdowns": ["sex"],
        "period": "2023..2025",
    }
    table = client.do_get(flight.Ticket(json.dumps(query).encode())).read_all()
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    df = table.to_pandas()

    print(f"{meta['norrsken.title']} ({meta['norrsken.recipe']}), period {meta['norrsken.period']}")
    columns = ["region_name", "sex", "numerator", "denominator", "value", "ci_lower", "ci_upper", "status"]
    print(df[[c for c in columns if c in df.columns]].to_string(index=False))

    print("\nRegions:")
    for r in json.loads(meta["norrsken.regions"]):
        print(f"  {r['name']:<20} {r['status']:<11} data {r['data_version']}")
    if meta.get("norrsken.partial") == "true":
        print("PARTIAL RESULT: not every region answered.")

    pooled = df[df["row_kind"] == "pooled"]
    print(f"\npooled rows: {len(pooled)}, pooled denominator {int(pooled['denominator'].sum())}")


if __name__ == "__main__":
    main()
