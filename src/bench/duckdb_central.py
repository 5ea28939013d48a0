"""DuckDB as the central alternative for `norrsken bench`.

Reads a job (JSON) naming each region's Parquet datalager and the statements to run, puts
every region's CDM tables in a schema `norrsken_<code>` as views over the same Parquet files
the agents read (plus the `residents` view), runs each statement once for its rows and then
repeatedly for its time, and writes the rows and times (JSON).

    python3 duckdb_central.py JOB.json OUT.json
"""

import json
import sys
import time

import duckdb


def main(job_path, out_path):
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(job['threads'])}")
    for code, folder in job["regions"].items():
        schema = f"norrsken_{code}"
        con.execute(f"CREATE SCHEMA {schema}")
        for table in job["tables"]:
            path = f"{folder}/{table}/*.parquet".replace("'", "''")
            con.execute(f"CREATE VIEW {schema}.{table} AS SELECT * FROM read_parquet('{path}')")
        con.execute(f"CREATE VIEW {schema}.residents AS SELECT * FROM {schema}.persons WHERE substr(kommun, 1, 2) = '{code}'")
    results = {}
    for q in job["queries"]:
        start = time.perf_counter()
        cur = con.execute(q["sql"])
        columns = [d[0] for d in cur.description]
        rows = [list(r) for r in cur.fetchall()]
        first_ms = (time.perf_counter() - start) * 1000
        times = []
        begun = time.perf_counter()
        while len(times) < job["runs"] and (len(times) < job["min_runs"] or time.perf_counter() - begun < job["budget_s"]):
            t = time.perf_counter()
            con.execute(q["sql"]).fetchall()
            times.append((time.perf_counter() - t) * 1000)
        results[q["id"]] = {"columns": columns, "rows": rows, "first_ms": first_ms, "times_ms": times}
        print(f"  duckdb {q['id']}: {len(rows)} cells, p50 {sorted(times)[len(times) // 2]:.1f} ms", file=sys.stderr)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"engine": f"DuckDB {duckdb.__version__}", "results": results}, f, default=str)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: duckdb_central.py JOB.json OUT.json")
    main(sys.argv[1], sys.argv[2])
