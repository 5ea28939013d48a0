"""A real Flight SQL client (adbc-driver-flightsql from PyPI) against the coordinator.

Run by tests/sql.rs with NORRSKEN_SQL (grpc+tls://host:port), NORRSKEN_CERTS (the development
certificates), NORRSKEN_SERVER_NAME, NORRSKEN_OTHER (a folder with other-ca.pem/.key and
stranger.pem/.key) and optionally NORRSKEN_SQL_PARTIAL (a coordinator with a region down).
Prints one JSON object with what it saw; the Rust test compares it with the Flight answer.
"""

import json
import os
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

URI = os.environ["NORRSKEN_SQL"]
CERTS = os.environ["NORRSKEN_CERTS"]
OTHER = os.environ["NORRSKEN_OTHER"]
SERVER_NAME = os.environ["NORRSKEN_SERVER_NAME"]


def records(df):
    """Rows as dicts, missing values as None (JSON has no NaN)."""
    return df.astype(object).where(df.notna(), None).to_dict(orient="records")


def read(path):
    with open(path) as f:
        return f.read()


def connect(cert=None, key=None, uri=URI):
    kw = {
        DatabaseOptions.TLS_ROOT_CERTS.value: read(f"{CERTS}/ca.pem"),
        DatabaseOptions.TLS_OVERRIDE_HOSTNAME.value: SERVER_NAME,
    }
    if cert:
        kw[DatabaseOptions.MTLS_CERT_CHAIN.value] = read(cert)
        kw[DatabaseOptions.MTLS_PRIVATE_KEY.value] = read(key)
    return flight_sql.connect(uri, db_kwargs=kw, autocommit=True)


def analyst(uri=URI):
    return connect(f"{CERTS}/analyst.pem", f"{CERTS}/analyst.key", uri)


def refused(conn_factory, sql="SELECT id FROM reference.indicators"):
    try:
        with conn_factory() as conn, conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        return None
    except Exception as e:  # the driver raises its own error classes
        return f"{type(e).__name__}: {e}"


out = {}
with analyst() as conn:
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    out["catalogs"] = [c["catalog_name"] for c in objects]
    schemas = {}
    for c in objects:
        for s in c["catalog_db_schemas"] or []:
            schemas[s["db_schema_name"]] = sorted(t["table_name"] for t in (s["db_schema_tables"] or []))
    out["schemas"] = schemas
    schema = conn.adbc_get_table_schema("diabetes_statin", catalog_filter="norrsken", db_schema_filter="indicators")
    out["table_columns"] = schema.names
    out["table_types"] = conn.adbc_get_table_types()
    info = conn.adbc_get_info()
    out["vendor_name"] = info.get("vendor_name")

    with conn.cursor() as cur:
        cur.execute(
            "SELECT region, year, numerator, denominator, value FROM diabetes_statin "
            "WHERE year BETWEEN 2023 AND 2024 AND row_kind = 'region' ORDER BY region, year"
        )
        df = cur.fetch_df()
        out["statement"] = records(df)

        sql = (
            "SELECT region, year, numerator, denominator, value FROM indicators.diabetes_statin "
            "WHERE year IN (2023, 2024) AND row_kind = 'region' ORDER BY region, year"
        )
        cur.adbc_prepare(sql)
        cur.execute(sql)
        out["prepared"] = records(cur.fetch_df())

        # What the numbers are travels with them: the value column's metadata.
        cur.execute("SELECT region, value FROM diabetes_statin WHERE year = 2024")
        field = cur.fetch_arrow_table().schema.field("value")
        out["value_metadata"] = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        # Kommun names from the reference table.
        cur.execute(
            "SELECT k.name, k.region_name, d.numerator FROM primarvardskvalitet.diabetes_statin d "
            "JOIN reference.kommuner k ON d.kommun = k.kommun WHERE d.kommun = '2480' AND d.year = 2024 AND d.row_kind = 'region'"
        )
        out["kommun_names"] = records(cur.fetch_df())
        # The example README.md and docs/sql.md print: an open period ends with the data.
        cur.execute("SELECT region_name, year, value FROM diabetes_statin WHERE year >= 2023")
        out["from_year"] = records(cur.fetch_df())

        cur.execute(
            "SELECT a.region, a.year, a.value AS statin, b.value AS hba1c_over_70 "
            "FROM diabetes_statin a JOIN diabetes_hba1c_over_70 b ON a.region = b.region AND a.year = b.year "
            "WHERE a.year = 2024 AND b.year = 2024 ORDER BY a.region"
        )
        out["join"] = records(cur.fetch_df())

        cur.execute(
            "SELECT region, kommun, numerator, denominator FROM primarvardskvalitet.diabetes_statin "
            "WHERE kommun = '2480' AND year = 2024 ORDER BY region"
        )
        out["kommun"] = records(cur.fetch_df())

        cur.execute(
            "SELECT sum(numerator) AS n FROM diabetes_statin WHERE year = 2024 AND row_kind = 'region' AND status <> 'suppressed'"
        )
        out["sum"] = records(cur.fetch_df())

        cur.execute(
            "SELECT region, value, comparator_value, significance FROM compare('diabetes_statin', 2021, 2025) "
            "WHERE \"row\" = 'region' ORDER BY region"
        )
        out["compare"] = records(cur.fetch_df())
        cur.execute("SELECT region, from_group, to_group, abs_gap FROM equity('diabetes_statin', 2021, 2025, 'education') WHERE \"row\" = 'gap'")
        out["equity"] = records(cur.fetch_df())

        for name, bad in [
            ("age_range", "SELECT value FROM diabetes_statin WHERE year = 2024 AND age_band > '65'"),
            ("no_year", "SELECT value FROM diabetes_statin"),
            # Every breakdown at once: more than the regions' policies answer.
            ("select_star", "SELECT * FROM diabetes_statin WHERE year = 2024"),
        ]:
            try:
                cur.execute(bad)
                cur.fetchall()
                out[name] = None
            except Exception as e:
                out[name] = str(e)

        try:
            cur.adbc_statement.set_sql_query("DELETE FROM diabetes_statin")
            cur.adbc_statement.execute_update()
            out["update"] = None
        except Exception as e:
            out["update"] = f"{type(e).__name__}: {e}"
        try:
            cur.execute("CREATE TABLE x AS SELECT 1")
            cur.fetchall()
            out["ddl"] = None
        except Exception as e:
            out["ddl"] = f"{type(e).__name__}: {e}"

# Every SQL example the documentation and the demo print (collected by tests/sql.rs).
examples = json.loads(os.environ.get("NORRSKEN_SQL_EXAMPLES", "[]"))
out["examples"] = []
with analyst() as conn, conn.cursor() as cur:
    for sql in examples:
        try:
            cur.execute(sql)
            out["examples"].append({"sql": sql, "rows": len(cur.fetchall()), "error": None})
        except Exception as e:
            out["examples"].append({"sql": sql, "rows": 0, "error": str(e)[:400]})

out["no_certificate"] = refused(lambda: connect())
out["other_ca"] = refused(lambda: connect(f"{OTHER}/other-ca.pem", f"{OTHER}/other-ca.key"))
out["stranger"] = refused(lambda: connect(f"{OTHER}/stranger.pem", f"{OTHER}/stranger.key"))

partial = os.environ.get("NORRSKEN_SQL_PARTIAL")
if partial:
    with analyst(partial) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT bool_or(partial) AS partial, count(DISTINCT CASE WHEN row_kind = 'region' THEN region END) AS regions "
            "FROM diabetes_statin WHERE year = 2024"
        )
        out["partial"] = records(cur.fetch_df())
        cur.execute("SELECT row_kind, region, status, suggestion, partial FROM diabetes_statin WHERE year = 2024")
        out["partial_rows"] = records(cur.fetch_df())

json.dump(out, sys.stdout, default=str)
