// Step 7 (Pelican backend): the exchange_rates rows (valid_on, rates, created, modified) from old
// to new, straight over TemporaryAccess, in one transaction, then verified equal. One-off.
// The runbook's slips (a .csv dumped, an .sql copied; a detour through a laptop) are not repeated.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "./dependencies";
import type { Host } from "./host";
import type { TemporaryAccess } from "./temporaryAccess";
import { columnsFingerprintSql } from "./fingerprint";
import { verifiedCopy } from "./verifiedCopy";
import { sh, script } from "./shell";

export const EXCHANGE_RATES_COLUMNS = ["valid_on", "rates", "created", "modified"];

export interface ExchangeRatesCopyArgs {
    newMain: Host;
    access: TemporaryAccess;
    database: string;
    /** Steps that must be done first (the halt: nothing writes exchange_rates on either side). */
    after: pulumi.Resource[];
}

export class ExchangeRatesCopy extends pulumi.ComponentResource {
    readonly done: pulumi.Resource[];

    constructor(name: string, args: ExchangeRatesCopyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("data-support:pelican:ExchangeRatesCopy", name, {}, opts);
        const inherited = inheritedDependsOn(opts);
        const { newMain, access, database } = args;
        const columns = EXCHANGE_RATES_COLUMNS.join(", ");
        const copy = newMain.oneOff(
            `${name}-copy`,
            "copy-exchange-rates",
            script(
                access.check("postgres"),
                verifiedCopy({
                    access,
                    database,
                    fingerprintSql: columnsFingerprintSql("exchange_rates", EXCHANGE_RATES_COLUMNS),
                    held: sh`runuser -u postgres -- psql -X -At -d ${database} -c ${"SELECT count(*) FROM exchange_rates"}`,
                    refusal: [`${newMain.hostname}: exchange_rates in ${database} already has`, "row(s) that differ from the old server's; refusing to overwrite them. Empty the table if they are not needed, then run pulumi up again."],
                    subject: "exchange_rates",
                    compared: `exchange_rates (${columns})`,
                    // Committed only if the export finished: the end of data and COMMIT follow it.
                    copy: [
                        sh`{ printf '%s\\n' 'BEGIN;' ${`COPY exchange_rates (${columns}) FROM stdin;`}; ${access.ssh} ${`postgres@${access.target}`} ${`psql -X -v ON_ERROR_STOP=1 -d ${database} -c '\\copy exchange_rates (${columns}) to stdout'`} && printf '%s\\n' '\\.' 'COMMIT;'; } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d ${database}`,
                    ],
                }),
                sh`echo "exchange_rates: $(cut -d'|' -f1 "$fp/new") row(s) copied and verified equal"`,
            ),
            { parent: this, dependsOn: [...inherited, ...args.after, access.granted] },
        );
        this.done = [copy];
        this.registerOutputs({});
    }
}
