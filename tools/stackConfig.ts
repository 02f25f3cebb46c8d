// A stack's config read from Pulumi.yaml and Pulumi.<stack>.yaml as the Pulumi CLI reads them, for
// running the program offline: keys are `<namespace>:<key>` (bare keys of the project file belong
// to the project), values keep their structure, and the stack's values win over the project's.
// `secure:` values cannot be decrypted here (no passphrase, no CLI): each becomes a placeholder
// that passes validation and reads "[secret]" wherever it would appear.
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";

export const SECRET = "[secret]";
// A private key must look like one to pass validation; the runbook shows it as SECRET too.
const SECRET_PRIVATE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${SECRET}\n-----END OPENSSH PRIVATE KEY-----\n`;

// A Sentry DSN must look like one too (it is written bare into the crawl scripts).
const SECRET_SENTRY_DSN = "https://secret@sentry.invalid/0";

/** The placeholder of a secure value at a config path, e.g. `data-support:ssh.privateKey`. */
export function secretPlaceholder(keyPath: string): string {
    if (/(^|[.:])privateKey$/.test(keyPath)) return SECRET_PRIVATE_KEY;
    return /(^|[.:])sentryDsn$/.test(keyPath) ? SECRET_SENTRY_DSN : SECRET;
}

/** Every placeholder, for whoever must make sure none shows but as SECRET. */
export const SECRET_PLACEHOLDERS = [SECRET_PRIVATE_KEY, SECRET_SENTRY_DSN, SECRET];

/** A stack file that cannot be read as the CLI would: names the file and what to do. */
export class StackFileError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "StackFileError";
    }
}

export interface StackConfig {
    /** The project's name (Pulumi.yaml `name`): the namespace of its own keys. */
    project: string;
    /** `<namespace>:<key>` -> value (structured values as objects), secure values replaced. */
    config: Record<string, unknown>;
    /** Where secure values were, e.g. `data-support:gates.scrapyd.password`. */
    secureKeys: string[];
}

function readYaml(file: string): Record<string, unknown> {
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (error) {
        throw new StackFileError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
    let doc: unknown;
    try {
        doc = parseYaml(text);
    } catch (error) {
        throw new StackFileError(`${file} is not valid YAML: ${(error as Error).message}`);
    }
    if (doc === null || doc === undefined) return {};
    if (typeof doc !== "object" || Array.isArray(doc)) throw new StackFileError(`${file}: expected a mapping at the top level`);
    return doc as Record<string, unknown>;
}

function isMapping(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Replaces every `{secure: ...}` below `value` with its placeholder, noting where it was. */
function withoutSecrets(value: unknown, at: string, found: string[]): unknown {
    if (Array.isArray(value)) return value.map((v, i) => withoutSecrets(v, `${at}[${i}]`, found));
    if (isMapping(value)) {
        const keys = Object.keys(value);
        if (keys.length === 1 && keys[0] === "secure" && typeof value.secure === "string") {
            found.push(at);
            return secretPlaceholder(at);
        }
        return Object.fromEntries(keys.map((k) => [k, withoutSecrets(value[k], `${at}.${k}`, found)]));
    }
    return value;
}

// Project config entries are either a declaration (type, default, value, ...) or, for short, the value itself.
const DECLARATION_KEYS = ["type", "description", "default", "value", "secret", "items"];

/** The stacks that have a Pulumi.<stack>.yaml in `dir`. */
export function stacksIn(dir: string): string[] {
    return fs
        .readdirSync(dir)
        .map((f) => /^Pulumi\.(.+)\.ya?ml$/.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .sort();
}

/** Reads the config `pulumi up -s <stack>` would give the program, run in `dir`. */
export function readStackConfig(dir: string, stack: string): StackConfig {
    const projectFile = path.join(dir, "Pulumi.yaml");
    const project = readYaml(projectFile);
    if (typeof project.name !== "string" || project.name === "") throw new StackFileError(`${projectFile}: no project name (name:)`);
    const name = project.name;
    const stackFile = ["yaml", "yml"].map((ext) => path.join(dir, `Pulumi.${stack}.${ext}`)).find((f) => fs.existsSync(f));
    if (!stackFile) {
        const known = stacksIn(dir);
        throw new StackFileError(`no stack file Pulumi.${stack}.yaml in ${dir}; stacks here: ${known.join(", ") || "none"}`);
    }
    const config: Record<string, unknown> = {};
    // Per key, where its secure values are: a stack's value replaces the project's, secrets and all.
    const secure: Record<string, string[]> = {};
    const set = (key: string, value: unknown) => {
        secure[key] = [];
        config[key] = withoutSecrets(value, key, secure[key]);
    };

    const projectConfig = project.config ?? {};
    if (!isMapping(projectConfig)) throw new StackFileError(`${projectFile}: config must be a mapping`);
    for (const [key, entry] of Object.entries(projectConfig)) {
        const full = key.includes(":") ? key : `${name}:${key}`;
        const declared = isMapping(entry) && Object.keys(entry).some((k) => DECLARATION_KEYS.includes(k));
        const value = declared ? (entry.value ?? entry.default) : entry;
        if (value !== undefined) set(full, value);
    }

    const stackConfig = readYaml(stackFile).config ?? {};
    if (!isMapping(stackConfig)) throw new StackFileError(`${stackFile}: config must be a mapping`);
    for (const [key, value] of Object.entries(stackConfig)) {
        // The CLI only takes namespaced keys from a stack file (`pulumi config set` writes them so).
        if (!key.includes(":")) throw new StackFileError(`${stackFile}: config key '${key}' has no namespace; write it as ${name}:${key}`);
        set(key, value);
    }
    return { project: name, config, secureKeys: Object.values(secure).flat() };
}
