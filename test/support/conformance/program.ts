// A small Pulumi program for the engine conformance tests (test/unit/engine.test.ts): it declares
// the local commands listed in the config key `resources`, so each rule of the engine and the
// provider can be shown on the fewest resources. Not part of the data-support program.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

/** One local command of the conformance program (the config key `resources` lists them). */
export interface Spec {
    name: string;
    create?: string;
    update?: string;
    delete?: string;
    triggers?: unknown[];
    stdin?: string;
    /** Another resource whose stdout is this one's stdin. */
    stdinFrom?: string;
    dependsOn?: string[];
    deleteBeforeReplace?: boolean;
}

const specs = new pulumi.Config("data-support").requireObject<Spec[]>("resources");
const made = new Map<string, command.local.Command>();
for (const spec of specs) {
    made.set(
        spec.name,
        new command.local.Command(
            spec.name,
            {
                create: spec.create,
                update: spec.update,
                delete: spec.delete,
                triggers: spec.triggers,
                stdin: spec.stdinFrom ? made.get(spec.stdinFrom)!.stdout : spec.stdin,
                addPreviousOutputInEnv: false,
            },
            { dependsOn: (spec.dependsOn ?? []).map((d) => made.get(d)!), deleteBeforeReplace: spec.deleteBeforeReplace },
        ),
    );
}

export const stdout = Object.fromEntries([...made].map(([name, c]) => [name, c.stdout]));
