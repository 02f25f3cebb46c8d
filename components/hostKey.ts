// A server's pinned SSH host key, as config gives it: which keys the provider can check against an
// OpenSSH server, and how to get one. Part of the config schema (config.ts).
import { createPublicKey } from "node:crypto";
import { z } from "zod";

// A public host key as `ssh-keyscan` prints it after the host name: type, base64 blob, a comment allowed.
// Only types the provider can check against a current OpenSSH server: @pulumi/command 1.2.1
// (provider/pkg/provider/remote/connection.go) parses the key with x/crypto's ParseAuthorizedKey and
// offers ONLY its type as host-key algorithm (HostKeyAlgorithms = []string{publicKey.Type()}), so an
// ssh-rsa key offers SHA-1 "ssh-rsa" alone. The four below are plain key formats that x/crypto
// v0.48.0 (the provider's; ssh/common.go supportedHostKeyAlgos) verifies natively and OpenSSH offers.
// Value: the length of the key material (ed25519) or of the uncompressed point (ECDSA: 0x04, x, y).
const HOST_KEY_TYPES: Record<string, { curve?: string; jwkCurve?: string; length: number }> = {
    "ssh-ed25519": { length: 32 },
    "ecdsa-sha2-nistp256": { curve: "nistp256", jwkCurve: "P-256", length: 65 },
    "ecdsa-sha2-nistp384": { curve: "nistp384", jwkCurve: "P-384", length: 97 },
    "ecdsa-sha2-nistp521": { curve: "nistp521", jwkCurve: "P-521", length: 133 },
};

// Why a key type that parses is still refused: one sentence each.
function refusedTypeReason(type: string): string {
    if (type === "ssh-rsa") {
        return "is an ssh-rsa key, which is not accepted: the provider (@pulumi/command) then offers only the SHA-1 'ssh-rsa' host-key algorithm, which OpenSSH 8.8 and later refuse, so no command could run";
    }
    if (type === "ssh-dss") return "is an ssh-dss (DSA) key, which is not accepted: OpenSSH 7.0 and later do not offer DSA host keys, so the provider could never check it";
    return `is a '${type}' key, which is not accepted: the provider can check only ${Object.keys(HOST_KEY_TYPES).join(", ")} host keys against an OpenSSH server`;
}

/** What is wrong with a host key line, or undefined; every message ends in a `HOST_KEY_FIX`. */
export function hostKeyProblem(line: string): string | undefined {
    const fields = line.split(" ");
    const [type, blob = ""] = fields;
    if (/^(ssh-|ecdsa-|sk-)/.test(blob)) {
        return `starts with '${type}', which is not a key type: give the key without the host name ssh-keyscan prints first`;
    }
    if (!/^[a-z0-9@.-]+$/.test(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || /[\n\r\0]/.test(line)) {
        return "must be a public host key line: its type, one space and the base64 key, e.g. 'ssh-ed25519 AAAA...'";
    }
    if (!(type in HOST_KEY_TYPES)) return refusedTypeReason(type);
    const bytes = Buffer.from(blob, "base64");
    // Canonical base64 only (as ssh-keyscan prints it): Node's decoder would skip what Go's refuses.
    if (bytes.toString("base64") !== blob) return `is not a whole ${type} key: its base64 part does not decode`;
    const expected = HOST_KEY_TYPES[type];
    const wire = readSshStrings(bytes);
    const embedded = wire?.[0]?.toString("latin1");
    if (embedded !== undefined && embedded !== type && /^[a-z0-9@.-]+$/.test(embedded)) {
        return `says '${type}' but its base64 part holds a key of type '${embedded}'; copy the whole line again`;
    }
    const shape = wire !== undefined && wire.length === (expected.curve ? 3 : 2) && embedded === type && (!expected.curve || wire[1].toString("latin1") === expected.curve);
    // Only a key of the right shape has key material: the last of its strings.
    const material = shape ? wire[wire.length - 1] : undefined;
    if (material === undefined || material.length !== expected.length || (expected.jwkCurve && !onCurve(material, expected.jwkCurve))) {
        return `is not a whole ${type} key (its base64 part is cut short or damaged); copy the whole line again`;
    }
    return undefined;
}

/** SSH wire format (RFC 4251): a sequence of uint32-length-prefixed strings, nothing left over. */
function readSshStrings(bytes: Buffer): Buffer[] | undefined {
    const out: Buffer[] = [];
    let at = 0;
    while (at < bytes.length) {
        if (at + 4 > bytes.length) return undefined;
        const length = bytes.readUInt32BE(at);
        if (at + 4 + length > bytes.length) return undefined;
        out.push(bytes.subarray(at + 4, at + 4 + length));
        at += 4 + length;
    }
    return out;
}

// x/crypto rejects an ECDSA point off its curve, so the provider would fail to parse the key.
function onCurve(point: Buffer, crv: string): boolean {
    const size = (point.length - 1) / 2;
    if (point[0] !== 4) return false;
    try {
        createPublicKey({ key: { kty: "EC", crv, x: point.subarray(1, 1 + size).toString("base64url"), y: point.subarray(1 + size).toString("base64url") }, format: "jwk" });
        return true;
    } catch {
        return false;
    }
}

/** How to pin a server's ed25519 host key into `configKey` (also in host.ts's warning). */
export function pinHostKeyCommand(configKey: string, host: string, port = 22): string {
    return `pulumi config set --path '${configKey}' "$(ssh-keyscan${port === 22 ? "" : ` -p ${port}`} -t ed25519 ${host} | cut -d' ' -f2-)"`;
}

// Marks a hostKey issue: parseStackConfig adds how to get an ed25519 key, with the host filled in.
export const HOST_KEY_FIX = "hostKeyFix";
export const hostKey = z.string().superRefine((line, ctx) => {
    const problem = hostKeyProblem(line);
    if (problem) ctx.addIssue({ code: "custom", message: problem, params: { [HOST_KEY_FIX]: true } });
});
