// A directory tree's manifest, to prove two trees equal (paths, types, sizes, sha256 of contents)
// without hashing everything again after the halt: entries whose size and mtime are unchanged since
// the manifest given on stdin keep their digest (rsync's own quick check), the rest are hashed now.
// So the pre-sync, while the old server is live, pays for hashing every file, and the copy after the
// halt only for what changed. Written in Python (on every data support server: Kingfisher Collect
// runs on it) because the bookkeeping is awkward in shell and file names may hold any byte but NUL.
//
// One line per entry, tab-separated: type, size, sha256, path (JSON), mtime. The first four are
// what must be equal on both sides (`cut -f1-4`); the mtime only keys the reuse of digests.
import { sh, ShellText } from "./shell";

// The program is command text, so it is users' state: a comment in it still names
// components/progress.ts, where the reporter was when it was written (now machinery/progress.ts);
// editing that comment would update every step that runs it, for nothing.
const PROGRAM = String.raw`import hashlib, json, os, socket, sys, time
root = os.fsencode(sys.argv[1])
cache = {}
for line in sys.stdin.buffer:
    fields = line.rstrip(b"\n").split(b"\t")
    if len(fields) == 5 and fields[0] == b"f":
        cache[(fields[3], fields[1], fields[4])] = fields[2]
out = []
def walk(directory, prefix):
    with os.scandir(directory) as it:
        for entry in it:
            rel = prefix + entry.name
            p = json.dumps(os.fsdecode(rel), ensure_ascii=True).encode()
            st = entry.stat(follow_symlinks=False)
            if entry.is_symlink():
                out.append((rel, b"l\t0\t%s\t%s\t0" % (hashlib.sha256(os.readlink(entry.path)).hexdigest().encode(), p)))
            elif entry.is_dir(follow_symlinks=False):
                out.append((rel, b"d\t0\t-\t%s\t0" % p))
                walk(entry.path, rel + b"/")
            elif entry.is_file(follow_symlinks=False):
                s, m = str(st.st_size).encode(), str(st.st_mtime_ns).encode()
                h = cache.get((p, s, m))
                if h is None:
                    todo.append((len(out), entry.path, st.st_size, s, p, m))
                out.append((rel, b"f\t%s\t%s\t%s\t%s" % (s, h or b"-", p, m)))
            else:
                out.append((rel, b"o\t0\t-\t%s\t0" % p))
todo = []
walk(root, b"")
# Hash what changed, with a progress line on stderr every 10 s (components/progress.ts).
total, done, start = sum(t[2] for t in todo), 0, time.monotonic()
last = start
for k, (i, path, size, s, p, m) in enumerate(todo):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            done += len(block)
            now = time.monotonic()
            if now - last >= 9:
                last, rate = now, done / (now - start)
                sys.stderr.write("%s: hashing %s: %d of %d files, %.1f of %.1f MB (%d%%), %.1f MB/s, about %d s left\n" % (
                    socket.gethostname(), sys.argv[1], k, len(todo), done / 1e6, total / 1e6, 100 * done // max(total, 1), rate / 1e6, (total - done) / max(rate, 1)))
                sys.stderr.flush()
    out[i] = (out[i][0], b"f\t%s\t%s\t%s\t%s" % (s, digest.hexdigest().encode(), p, m))
out.sort()
sys.stdout.buffer.write(b"".join(line + b"\n" for _, line in out))
`;

/** Shell that prints the manifest of `dir` (sorted by path bytes), reusing digests from stdin. */
export function treeManifest(dir: string): ShellText {
    return sh`python3 -c ${PROGRAM} ${dir}`;
}

/** Shell that prints what must be equal on both sides: the manifest without mtimes. */
export function manifestContent(file: ShellText): ShellText {
    return sh`cut -f1-4 ${file}`;
}
