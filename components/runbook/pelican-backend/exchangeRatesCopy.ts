// Step 7 (Pelican backend): the exchange_rates rows (valid_on, rates, created, modified) from old
// to new, straight over TemporaryAccess, in one transaction, then verified equal. One-off.
// The runbook's slips (a .csv dumped, an .sql copied; a detour through a laptop) are not repeated.
import * as pulumi from "@pulumi/pulumi";
import { inheritedDependsOn } from "../../machinery/dependencies";
import type { Host } from "../../machinery/host";
import type { TemporaryAccess } from "../../machinery/temporaryAccess";
import { columnsFingerprintSql } from "../../machinery/fingerprint";
import { remoteFingerprintCommand, verifiedCopy } from "../../machinery/verifiedCopy";
import type { TransferCommand } from "../../machinery/temporaryAccess";
import { sh, script } from "../../machinery/shell";
import { databaseLoadMeter, EXCHANGE_RATES_TABLE, tableBytesCommand, withProgress } from "../../machinery/progress";

export const EXCHANGE_RATES_COLUMNS = ["valid_on", "rates", "created", "modified"];

/** The export the new server asks the old one for (as postgres, over the transfer key). */
export function exchangeRatesExport(database: string): string {
    return `psql -X -v ON_ERROR_STOP=1 -d ${database} -c '\\copy exchange_rates (${EXCHANGE_RATES_COLUMNS.join(", ")}) to stdout'`;
}

/** What the transfer key must be allowed to run on the old server for this copy. */
export function exchangeRatesTransfers(database: string): TransferCommand[] {
    return [
        { user: "postgres", command: exchangeRatesExport(database) },
        { user: "postgres", command: remoteFingerprintCommand(database, "exchange_rates"), input: columnsFingerprintSql("exchange_rates", EXCHANGE_RATES_COLUMNS) },
        // The total of the progress lines (components/machinery/progress.ts).
        { user: "postgres", command: tableBytesCommand(database, EXCHANGE_RATES_TABLE) },
    ];
}

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
                    fingerprintTag: "exchange_rates",
                    fingerprintSql: columnsFingerprintSql("exchange_rates", EXCHANGE_RATES_COLUMNS),
                    held: sh`runuser -u postgres -- psql -X -At -d ${database} -c ${"SELECT count(*) FROM exchange_rates"}`,
                    refusal: [`${newMain.hostname}: exchange_rates in ${database} already has`, "row(s) that differ from the old server's; refusing to overwrite them. Empty the table if they are not needed, then run pulumi up again."],
                    subject: "exchange_rates",
                    compared: `exchange_rates (${columns})`,
                    tables: EXCHANGE_RATES_TABLE,
                    // Committed only if the export finished: the end of data and COMMIT follow it.
                    copy: [
                        withProgress(
                            databaseLoadMeter("exchange_rates: loading", database, sh`${access.ssh} ${`postgres@${access.target}`} ${tableBytesCommand(database, EXCHANGE_RATES_TABLE)}`),
                            sh`{ printf '%s\\n' 'BEGIN;' ${`COPY exchange_rates (${columns}) FROM stdin;`}; ${access.ssh} ${`postgres@${access.target}`} ${exchangeRatesExport(database)} && printf '%s\\n' '\\.' 'COMMIT;'; } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d ${database}`,
                        ),
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
