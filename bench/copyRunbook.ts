// What bench/copy.ts measures the program against, and where on the test hosts.

// The runbook's literal commands (../shared/seed/data-support.rst, "Kingfisher Collect"), run as
// the incremental user in its home directory, as the runbook says.
export const RUNBOOK = {
    dump: "pg_dump -U kingfisher_collect -h localhost -f kingfisher_collect.sql kingfisher_collect",
    transfer: "rsync -avz incremental@ocp04.open-contracting.org:~/kingfisher_collect.sql .",
    load: "psql -U kingfisher_collect -h localhost -f kingfisher_collect.sql kingfisher_collect",
    data: "rsync -avz incremental@ocp04.open-contracting.org:/home/incremental/data/ /home/incremental/data/",
    logs: "rsync -avz incremental@ocp04.open-contracting.org:/home/incremental/logs/ /home/incremental/logs/",
};

// The migration id the bench's program runs under, and the incremental user's home and database.
export const MIGRATION_ID = "bench-copy";
export const HOME = "/home/incremental";
export const DB = "kingfisher_collect";
