// Issue 8, parts 1 and 2: the data the copy benchmark moves, generated on the old test host.
// - kingfisher_collect: a few indexed tables of JSONB rows (OCDS-like releases), made with
//   generate_series inside PostgreSQL, sized by calibration to a target pg_database_size.
// - /home/incremental/data: files of JSON lines in <spider>/<crawl>/ directories, and a change of
//   a given share of them (new content, same size, new mtime), as crawls after a first sync would.

/** Rows per calibration batch: enough to measure bytes per row, quick to make. */
export const CALIBRATION_ROWS = 20000;

/** The tables, each with its share of the rows; ids of each table come from its own range. */
const TABLES = [
    { name: "bench_release", share: 0.6, tag: "tender", unique: false, offset: 0 },
    { name: "bench_record", share: 0.3, tag: "award", unique: true, offset: 1_000_000_000 },
    { name: "bench_compiled_release", share: 0.1, tag: "compiled", unique: false, offset: 2_000_000_000 },
];

/** A session-local function (pg_temp): one OCDS-like document of about 1.3 kB, below the TOAST threshold. */
const DOC_FUNCTION = `CREATE FUNCTION pg_temp.bench_doc(g bigint, kind text) RETURNS jsonb LANGUAGE sql AS $fn$
SELECT jsonb_build_object(
  'ocid', 'ocds-213czf-' || lpad(g::text, 10, '0'),
  'id', kind || '-' || g,
  'date', (timestamp '2020-01-01' + g * interval '7 minutes')::text,
  'tag', jsonb_build_array(kind),
  'initiationType', 'tender',
  'language', 'es',
  'buyer', jsonb_build_object('id', 'DO-UC-' || (g % 4000), 'name', 'Unidad de compras ' || md5((g % 4000)::text)),
  'tender', jsonb_build_object(
    'id', 'T-' || g,
    'title', 'Adquisición de bienes y servicios ' || md5(g::text),
    'description', repeat(md5(g::text || 'x') || ' ', 6),
    'status', (ARRAY['active', 'complete', 'cancelled'])[1 + (g % 3)::int],
    'value', jsonb_build_object('amount', round((g * 37 % 1000000) * 1.25, 2), 'currency', 'DOP'),
    'items', (SELECT jsonb_agg(jsonb_build_object('id', i, 'description', 'Artículo ' || md5(g::text || '-' || i), 'quantity', i * 3,
                                                  'unit', jsonb_build_object('name', 'Unidad', 'value', jsonb_build_object('amount', i * 10.5, 'currency', 'DOP'))))
              FROM generate_series(1, 1 + (g % 6)::int) AS i)),
  'parties', (SELECT jsonb_agg(jsonb_build_object('id', 'DO-RPE-' || (g * p % 9973), 'name', 'Proveedor ' || md5((g * p)::text), 'roles', jsonb_build_array('supplier')))
              FROM generate_series(1, 1 + (g % 3)::int) AS p)
)
$fn$;`;

/** Creates the benchmark's tables and indexes (owned by kingfisher_collect). */
export function createTablesSql(): string {
    return [
        "SET ROLE kingfisher_collect;",
        ...TABLES.map(
            (t) => `CREATE TABLE ${t.name} (
  id bigserial PRIMARY KEY,
  collection_id integer NOT NULL,
  ocid text NOT NULL,
  release_date timestamp NOT NULL,
  data jsonb NOT NULL
);
CREATE ${t.unique ? "UNIQUE " : ""}INDEX ${t.name}_ocid_idx ON ${t.name} (ocid);
CREATE INDEX ${t.name}_collection_date_idx ON ${t.name} (collection_id, release_date);`,
        ),
    ].join("\n");
}

/**
 * Inserts rows numbered [from, from + count) spread over the tables by their shares; prints
 * nothing. Each psql session defines the document function again (it lives in pg_temp).
 */
export function insertRowsSql(from: number, count: number): string {
    const parts = ["SET ROLE kingfisher_collect;", DOC_FUNCTION];
    for (const t of TABLES) {
        const n = Math.max(1, Math.round(count * t.share));
        const first = t.offset + from;
        parts.push(
            `INSERT INTO ${t.name} (collection_id, ocid, release_date, data)
SELECT 1 + g % 40, 'ocds-213czf-' || lpad(g::text, 10, '0'), timestamp '2020-01-01' + g * interval '7 minutes', pg_temp.bench_doc(g, '${t.tag}')
FROM generate_series(${first}::bigint, ${first + n - 1}::bigint) AS g;`,
        );
    }
    return parts.join("\n");
}

/** After generating: hint bits set, statistics, a checkpoint, so no run pays for the generation. */
export const SETTLE_SQL = "VACUUM (ANALYZE);\nCHECKPOINT;\n";

/** Python (python3 -) run as the incremental user on old: `generate ROOT N BYTES SEED` or `change ROOT PERCENT SEED`. */
export const FILES_PY = String.raw`
import json, os, random, sys

SPIDERS = ["dominican_republic_api", "ecuador_sercop_bulk", "paraguay_dncp_records", "colombia_bulk",
           "mexico_quien_es_quien", "chile_compra_api_records", "honduras_oncae", "uruguay_historical",
           "moldova", "ukraine"]

def generate(root, n, total, seed):
    rnd = random.Random(seed)
    # About 8 MiB of OCDS-like JSON lines; each file is a slice of it at a random offset.
    lines, size, i = [], 0, 0
    while size < 8 << 20:
        line = json.dumps({"ocid": "ocds-213czf-%08d" % i, "id": rnd.getrandbits(63),
                           "date": "2024-%02d-%02dT00:00:00Z" % (1 + i % 12, 1 + i % 28),
                           "tender": {"title": "Adquisición de " + rnd.randbytes(12).hex(),
                                      "value": {"amount": rnd.randint(1, 10**9) / 100, "currency": "DOP"}},
                           "hash": rnd.randbytes(16).hex()}, ensure_ascii=False) + "\n"
        lines.append(line)
        size += len(line.encode())
        i += 1
    base = "".join(lines).encode()
    avg = total // n
    written = 0
    for k in range(n):
        d = os.path.join(root, SPIDERS[k % len(SPIDERS)], "2025%02d01_001500" % (1 + (k // len(SPIDERS)) % 4))
        os.makedirs(d, exist_ok=True)
        length = min(len(base) - 1, rnd.randint(avg // 2, avg * 3 // 2))
        offset = rnd.randrange(len(base) - length)
        with open(os.path.join(d, "%d.json" % k), "wb") as f:
            f.write(base[offset:offset + length])
        written += length
    print(json.dumps({"files": n, "bytes": written}))

def change(root, percent, seed):
    rnd = random.Random(seed)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    k = max(1, round(len(files) * percent / 100))
    changed = 0
    for path in rnd.sample(files, k):
        length = os.path.getsize(path)
        # New content of the same size (fresh random values, so rsync finds no matching blocks).
        text = b""
        while len(text) < length:
            text += (json.dumps({"changed": rnd.randbytes(48).hex(), "n": rnd.getrandbits(31)}) + "\n").encode()
        with open(path, "wb") as f:
            f.write(text[:length])
        changed += length
    print(json.dumps({"files": k, "bytes": changed}))

mode = sys.argv[1]
if mode == "generate":
    generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
elif mode == "change":
    change(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
else:
    sys.exit("usage: generate ROOT N BYTES SEED | change ROOT PERCENT SEED")
`;
