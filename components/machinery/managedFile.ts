// One file on a server, as desired state: its whole content arrives on stdin, is checked, and is
// moved into place in one rename only when it differs; deleting the resource removes the file.
import * as crypto from "node:crypto";
import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { Host } from "./host";
import { sh, script, ShellText } from "./shell";

export interface ManagedFileArgs {
    path: string;
    content: string;
    owner: string;
    mode: "0644" | "0755" | "0600";
    /** A shell script: checked with `sh -n` before it replaces the old one. */
    shellScript?: boolean;
    /**
     * The content holds a secret: stdin is marked secret, and the content's sha256 travels on
     * stdin (its first line) instead of in the command text, so no function of it shows there.
     */
    secret?: boolean;
    /** More directories to create beside the file's own (same owner, 0755). */
    alsoDirs?: string[];
}

export const sha256 = (text: string): string => crypto.createHash("sha256").update(text).digest("hex");

/**
 * Shell that receives `content` on stdin into "$tmp" (a new file beside `path`, removed on exit)
 * and fails with `incomplete` unless it arrived whole: a truncated transfer never replaces a file.
 * With `secret`, stdin is the content's sha256, a newline, then the content, so that no function
 * of a secret shows in the command text.
 */
export function receiveWhole(path: string, content: string, incomplete: string, secret = false): ShellText {
    return script(
        sh`tmp=$(mktemp ${`${path}.XXXXXX`}); trap 'rm -f "$tmp"' EXIT`,
        secret ? sh`IFS= read -r want && cat > "$tmp"` : sh`cat > "$tmp"`,
        sh`test "$(sha256sum < "$tmp" | cut -d' ' -f1)" = ${secret ? sh`"$want"` : sha256(content)} || { echo ${incomplete} >&2; exit 1; }`,
    );
}

export function managedFile(host: Host, name: string, args: ManagedFileArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const { path, owner } = args;
    const records = `${host.settings.stateDir}/files`;
    const byName = `${records}/${name}.path`;
    const byPath = `${records}/${sha256(path)}.owner`;
    const incomplete = `${host.hostname}: ${path} arrived incomplete; the old file is unchanged`;
    const install = script(
        sh`install -d -m 0755 -o ${owner} -g ${owner} ${[path.replace(/\/[^/]+$/, ""), ...(args.alsoDirs ?? [])]}`,
        receiveWhole(path, args.content, incomplete, args.secret),
        args.shellScript ? sh`sh -n "$tmp"` : sh`:`,
        sh`chown ${owner}: "$tmp"; chmod ${args.mode} "$tmp"`,
        sh`if cmp -s "$tmp" ${path} && [ "$(stat -c %U:%a ${path})" = ${`${owner}:${args.mode.replace(/^0/, "")}`} ]; then echo ${`${path}: unchanged`}; else mv "$tmp" ${path}; echo ${`${path}: installed`}; fi`,
        // Which resource installed which path, on the server: a file whose path changed (a crawl's
        // spider renamed) is removed from its old path, and a resource that left the config does
        // not remove a path another one installs now (a crawl's identifier renamed: the new one is
        // created before the old one is deleted).
        sh`records=${records}; mkdir -p "$records"; prev=$(cat ${byName} 2>/dev/null || true)`,
        sh`if [ -n "$prev" ] && [ "$prev" != ${path} ] && [ "$(cat "$records/$(printf '%s' "$prev" | sha256sum | cut -d' ' -f1).owner" 2>/dev/null)" = ${name} ]; then rm -f "$prev" "$records/$(printf '%s' "$prev" | sha256sum | cut -d' ' -f1).owner"; echo "$prev: removed (now ${path})"; fi`,
        sh`printf '%s\\n' ${path} > ${byName}; printf '%s\\n' ${name} > ${byPath}`,
    );
    const remove = script(
        sh`owner=$(cat ${byPath} 2>/dev/null || echo ${name})`,
        sh`if [ "$owner" = ${name} ]; then rm -f ${path} ${byPath}; else echo ${`${path}: kept, installed now by`} "$owner"; fi`,
        sh`rm -f ${byName}`,
    );
    return host.command(name, { create: install, update: install, delete: remove, stdin: args.secret ? pulumi.secret(`${sha256(args.content)}\n${args.content}`) : args.content }, opts);
}
