// What the config check says of a config: its problems, one per bad key, or none. Shared by the
// config tests (config.test.ts, configDestinations.test.ts).
import * as assert from "node:assert/strict";
import { ConfigError, parseStackConfig } from "../../components/config";

/** The problems parseStackConfig reports for `config` (it must throw a ConfigError, or accept it: []). */
export function problemsOf(config: Record<string, unknown>): string[] {
    try {
        parseStackConfig(config);
    } catch (error) {
        assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
        return error.problems;
    }
    return [];
}
