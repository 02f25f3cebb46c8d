// The operator's machine: where `pulumi up` runs. Gates that ask public endpoints run here
// (local.Command), like the runbook's "check ... at https://..." steps in a browser.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { noteForRunbook } from "./runbookNotes";
import type { ShellText } from "./shell";

export interface LocalSpec {
    create: ShellText;
    /** Run instead of `create` when an input changes (unset: `create` runs again). */
    update?: ShellText;
    /** Secrets go here, never in command text. */
    stdin?: pulumi.Input<string>;
    triggers?: pulumi.Input<unknown[]>;
    /** For a gate: what must hold for the run to go on, in words (shown by the offline runbook). */
    gate?: string;
}

/** A local command with the design's defaults; run from the project directory. */
export function localCommand(name: string, spec: LocalSpec, opts: pulumi.CustomResourceOptions): command.local.Command {
    if (spec.gate) noteForRunbook(name, { kind: "gate", condition: spec.gate });
    return new command.local.Command(
        name,
        {
            create: spec.create.text,
            update: spec.update?.text,
            stdin: spec.stdin,
            triggers: spec.triggers,
            addPreviousOutputInEnv: false,
        },
        opts,
    );
}
