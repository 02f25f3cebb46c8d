// Hostile values for every config string that could reach a shell (issue 9, injection). Each
// would create CANARY_FILE if a shell ever ran it as code.
export const CANARY_FILE = "/tmp/INJECTED";

export const PAYLOADS: readonly string[] = [
    "it's",
    `"double" quotes`,
    `$(touch ${CANARY_FILE})`,
    `\`touch ${CANARY_FILE}\``,
    `a\nb; touch ${CANARY_FILE}`,
    `; touch ${CANARY_FILE}`,
    "-rf",
    "$HOME ${PATH} back\\slash",
];

/** Every string leaf of a config: [path, value]. */
export function stringLeaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
    if (typeof value === "string") return [path];
    if (value && typeof value === "object") {
        return Object.entries(value).flatMap(([k, v]) => stringLeaves(v, [...path, Array.isArray(value) ? Number(k) : k]));
    }
    return [];
}

/** A copy of `config` with the leaf at `path` set to `value`. */
export function withLeaf<T>(config: T, path: (string | number)[], value: unknown): T {
    const copy = structuredClone(config) as any;
    let node = copy;
    for (const key of path.slice(0, -1)) node = node[key];
    node[path[path.length - 1]] = value;
    return copy;
}
