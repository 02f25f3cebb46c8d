// One file on a server, as desired state: its whole content arrives on stdin, is checked, and is
// moved into place in one rename only when it differs; deleting the resource removes the file.
import * as crypto from "node:crypto";
import type * as command from "@pulumi/command";
import type * as pulumi from "@pulumi/pulumi";
import type { Host } from "./host";
import { sh, script, ShellText } from "./shell";

export interface ManagedFileArgs {
    path: string;
    content: string;
    owner: string;
    mode: "0644" | "0755" | "0600";
    /** A shell script: checked with `sh -n` before it replaces the old one. */
    shellScript?: boolean;
}

export const sha256 = (text: string): string => crypto.createHash("sha256").update(text).digest("hex");

/**
 * Shell that receives `content` on stdin into "$tmp" (a new file beside `path`, removed on exit)
 * and fails with `incomplete` unless it arrived whole: a truncated transfer never replaces a file.
 */
export function receiveWhole(path: string, content: string, incomplete: string): ShellText {
    return script(
        sh`tmp=$(mktemp ${`${path}.XXXXXX`}); trap 'rm -f "$tmp"' EXIT`,
        sh`cat > "$tmp"`,
        sh`test "$(sha256sum < "$tmp" | cut -d' ' -f1)" = ${sha256(content)} || { echo ${incomplete} >&2; exit 1; }`,
    );
}

export function managedFile(host: Host, name: string, args: ManagedFileArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const { path, owner } = args;
    const install = script(
        sh`install -d -m 0755 -o ${owner} -g ${owner} ${path.replace(/\/[^/]+$/, "")}`,
        receiveWhole(path, args.content, `${host.hostname}: ${path} arrived incomplete; the old file is unchanged`),
        args.shellScript ? sh`sh -n "$tmp"` : sh`:`,
        sh`chown ${owner}: "$tmp"; chmod ${args.mode} "$tmp"`,
        sh`if cmp -s "$tmp" ${path} && [ "$(stat -c %U:%a ${path})" = ${`${owner}:${args.mode.replace(/^0/, "")}`} ]; then echo ${`${path}: unchanged`}; else mv "$tmp" ${path}; echo ${`${path}: installed`}; fi`,
    );
    return host.command(name, { create: install, update: install, delete: sh`rm -f ${path}`, stdin: args.content }, opts);
}
