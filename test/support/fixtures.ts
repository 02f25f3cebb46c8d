// A complete, valid `main` stack config for the unit tests (documentation addresses only).
export const CANARY = {
    scrapyd: "canary-scrapyd-S3cr3t-7f1c",
    rabbitmq: "canary-rabbit-S3cr3t-2b9e",
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\ncanary-private-key-9d4a\n-----END OPENSSH PRIVATE KEY-----\n",
};

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPLfgb8NCsq8iWwOKD94KbEioHv1Pou5MsJjvBtNZ01";

export function mainConfig(overrides: Record<string, unknown> = {}): Record<string, any> {
    const server = (name: string, n: number) => ({
        hostname: `${name}.open-contracting.org`,
        ipv4: `198.51.100.${n}`,
        ipv6: `2001:db8:d5::${n}`,
        ssh: { user: "root", port: 22, hostKey: HOST_KEY },
    });
    return {
        role: "main",
        migrationId: "ocp04-to-ocp23",
        servers: { oldMain: server("ocp04", 4), newMain: server("ocp23", 23), docs: server("ocp19", 19) },
        tinyproxy: { port: 8888, keep: [{ address: "198.51.100.10", comment: "ocp10 (collect)" }] },
        postgres: { publicHostname: "postgres.kingfisher.open-contracting.org" },
        incremental: {
            crawls: [
                { identifier: "DOMINICAN_REPUBLIC", spider: "dominican_republic_api", crawl_time: "2025-05-06", spider_arguments: "-a compile_releases=true", users: ["dgcp"] },
                { identifier: "ECUADOR", spider: "ecuador_sercop_bulk", crawl_time: "2025-01-01", day: 1 },
            ],
        },
        gates: {
            scrapyd: { url: "https://collect.kingfisher.open-contracting.org", username: "scrape", password: CANARY.scrapyd },
            rabbitmq: { url: "https://rabbitmq.kingfisher.open-contracting.org", username: "admin", password: CANARY.rabbitmq },
            collectHostname: "collect.kingfisher.open-contracting.org",
        },
        ...overrides,
    };
}

export function withReplica(config: Record<string, any>): Record<string, any> {
    return {
        ...config,
        servers: { ...config.servers, replica: { hostname: "ocp24.open-contracting.org", ipv4: "198.51.100.24", ipv6: "2001:db8:d5::24", ssh: { hostKey: HOST_KEY } } },
    };
}
