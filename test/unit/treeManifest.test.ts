// The tree manifest (components/machinery/treeManifest.ts) on a real directory: equal trees give equal
// content, any change of a name, a size or a byte (with its mtime) shows, and unchanged files keep
// their digest from the previous manifest instead of being read again.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { manifestContent, treeManifest } from "../../components/machinery/treeManifest";
import { sh } from "../../components/machinery/shell";

function manifest(dir: string, previous = ""): string {
    return execFileSync("bash", ["-c", treeManifest(dir).text], { input: previous }).toString();
}
function content(text: string): string {
    const file = path.join(os.tmpdir(), `manifest-${process.pid}`);
    fs.writeFileSync(file, text);
    return execFileSync("bash", ["-c", manifestContent(sh`${file}`).text]).toString();
}
function tree(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tree-"));
    fs.mkdirSync(path.join(dir, "nested dir"));
    fs.writeFileSync(path.join(dir, "données été.json"), '{"a": 1}');
    fs.writeFileSync(path.join(dir, "nested dir", "file with spaces"), "x".repeat(1000));
    fs.writeFileSync(path.join(dir, "empty"), "");
    fs.symlinkSync("empty", path.join(dir, "link"));
    return dir;
}

test("two equal trees have equal content; a changed byte, size or name shows", () => {
    const a = tree();
    const b = tree();
    assert.equal(content(manifest(a)), content(manifest(b)));
    assert.equal(content(manifest(a)).split("\n").filter(Boolean).length, 5);
    const base = content(manifest(b));
    fs.writeFileSync(path.join(b, "nested dir", "file with spaces"), "y" + "x".repeat(999));
    assert.notEqual(content(manifest(b)), base, "a changed byte");
    fs.appendFileSync(path.join(b, "empty"), "z");
    fs.renameSync(path.join(b, "données été.json"), path.join(b, "donnees ete.json"));
    const changed = content(manifest(b));
    assert.doesNotMatch(changed, /donn\\u00e9es/);
    assert.match(changed, /^f\t1\t/m, "the new size of 'empty'");
});

test("unchanged files keep the digest of the previous manifest; changed ones are hashed again", () => {
    const dir = tree();
    const first = manifest(dir);
    // Mark every digest of the previous manifest, so reuse can be seen.
    const marked = first.replace(/^f\t(\d+)\t[0-9a-f]{64}\t/gm, "f\t$1\tREUSED\t");
    fs.writeFileSync(path.join(dir, "empty"), "now changed");
    const second = manifest(dir, marked);
    assert.match(second, /^f\t\d+\tREUSED\t"donn\\u00e9es \\u00e9t\\u00e9\.json"/m);
    assert.match(second, /^f\t11\t[0-9a-f]{64}\t"empty"/m);
});
