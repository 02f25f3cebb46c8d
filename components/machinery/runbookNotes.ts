// What the offline runbook (tools/runbook.ts) cannot read from a command's inputs: which commands
// are one-off steps, and what each gate checks, in words. Host.oneOff and the gates record it here
// by resource name (unique in a stack). Nothing in the program reads it back, so it changes no
// command: it only saves the runbook from guessing by parsing scripts.

export type RunbookNote =
    | { kind: "one-off"; /** The step's id. */ step: string; /** Its completion marker on the host. */ marker: string }
    | { kind: "gate"; /** What must hold for the run to go on. */ condition: string };

const notes = new Map<string, RunbookNote>();

export function noteForRunbook(resourceName: string, note: RunbookNote): void {
    notes.set(resourceName, note);
}

export function runbookNote(resourceName: string): RunbookNote | undefined {
    return notes.get(resourceName);
}

/** For a runner that runs the program more than once in one process. */
export function clearRunbookNotes(): void {
    notes.clear();
}
