// Moved to scripts/program.ts (the offline runbook runs the program too); kept so tests import it here.
export * from "../../scripts/program";
