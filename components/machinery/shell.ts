// The one way to build shell text: every interpolated value is single-quoted, so no value from
// config reaches a shell unquoted. Written here (a dozen lines) rather than taken from a library
// because the POSIX rule is tiny and we want no surprises in what it emits.

/** Quotes one value for a POSIX shell: 'it'\''s' style. */
export function quote(value: string | number): string {
    const text = String(value);
    if (text.includes("\0")) throw new Error("a shell value cannot hold a NUL byte");
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text) && !text.startsWith("-")) return text;
    return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Shell text that is already safe (built with `sh`): interpolated as it is. */
export class ShellText {
    constructor(readonly text: string) {}
    toString(): string {
        return this.text;
    }
}

type ShellValue = string | number | ShellText | readonly (string | number | ShellText)[];

function render(value: ShellValue): string {
    if (value instanceof ShellText) return value.text;
    if (Array.isArray(value)) return value.map((v) => render(v)).join(" ");
    return quote(value as string | number);
}

/** Tagged template: sh`rm -f ${path}` quotes `path`; arrays become several quoted words. */
export function sh(strings: TemplateStringsArray, ...values: ShellValue[]): ShellText {
    let out = strings[0];
    values.forEach((value, i) => {
        out += render(value) + strings[i + 1];
    });
    return new ShellText(out);
}

/** Joins shell fragments into one script, one per line. */
export function script(...lines: ShellText[]): ShellText {
    return new ShellText(lines.map((l) => l.text).join("\n"));
}

/** Runs `command` as `user` in a login shell (like the runbook's `su - deployer`): HOME and PATH are the user's. */
export function asUser(user: string, command: ShellText): ShellText {
    return sh`runuser -l ${user} -c ${command.text}`;
}
