// A complete, valid `main` stack config for the unit tests (documentation addresses only).
export const CANARY = {
    scrapyd: "canary-scrapyd-S3cr3t-7f1c",
    rabbitmq: "canary-rabbit-S3cr3t-2b9e",
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\ncanary-private-key-9d4a\n-----END OPENSSH PRIVATE KEY-----\n",
    // Shaped like a Sentry DSN (incremental.sentryDsn accepts nothing else).
    sentryDsn: "https://canarysentry5e3d@o1.ingest.sentry.example/4242",
};

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPLfgb8NCsq8iWwOKD94KbEioHv1Pou5MsJjvBtNZ01";

// Real keys, made with ssh-keygen (OpenSSH 9.2) for these tests; none is any server's.
export const KEYS = {
    rsa: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQClY04dB6pZactgKtwDx8QLzHU73zb0H9XM/IFn1Jw5kP4++D08A9DhIC72OQ+x/lFFADZ5pK8llux94wPg91KIV4pzJLBnxOny8Annft4pWO3i7tAhDZWsnXNBrnsmN9BxbLCnfhUSMGfr/4f+2zCyAfVesb5kwjPyoV1X6KgIBd7hbVBvQaPACIbsF40SgzoWRgD4qUhnrwEiufAqzcKFOJIWyipyVcgRcgDqEYZkpD3Ewf1S/Ty0b/TL04IEo3PM3NoR6Y49L8kvZ+mXCxA8dktJZRaEKUmf+cExfMt6reOXsNu+hT8EVTJPxMZF1oYse995a6htiiGALesnuwl/",
    dss: "ssh-dss AAAAB3NzaC1kc3MAAACBAO9Kqbxc+hm3bMQWBh5YMLKHltOL9juHms50JQvLH2a6OJZySP2zEmFcTtGxZajEpBdV8A4/19WrIRMmquvGfSeh69lH/fkYe+SkIvcgj4rms/GFTCVz/U8oQrUR3Ls309Iz6yeTZtfVTjfPKgUx08jitNh6Pv8KhHc1csn13hhxAAAAFQDa8y/72tvgfprmgSfaFBy5jDZqewAAAIApTSxC2jt2K5W50RLExNgbMETl5xwbg0cZu0P5/VUBpJs1Y9roNzNn3vqmi6gJSYyGzn5nJUsb3XQFBYfx9ei56EPu78wxHcBO+YVyn2lHe30AmjoPQcYx+8t3bdAwiPSs10y9JzwqBQntagZGB1RtQhNwdMEF/t/vQS+OqBhQDwAAAIEAr1kE6ZtT0wDOI6uDQ21CuNftYQf137kDfMY+K3XkdpiryWcx1WbLlShuTcVGGs0gshhzUeVfVAtafoXpM24Z2lzzeVYXEjmHgxy8TnztGZv27+uRFRnrPFm+I7sBPifzZ3u7UmVkAsUCN1tEg7t/8bmP8DPkhm4OTlWw+aRC6fM=",
    p256: "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE+KAU0FPSnF4A5FnwDBSylqlq3t2/TR/Fy7W8Fr5tGwI4s8qqlH6sxvQCMCF9MzpdR5FmAs3jtgTdhn6G7ABRE=",
    p384: "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBGeonbzOIEurrtRE6eyqJ5QLZ8HLP7M5qW6fsxmcQ18Y4XaJBCrnSiOdjqe3qr+/wEVxk64mRAtrLN3RBz0SgRKQnr/RgYkkoypPPZ7BLjLCvqdzS4wz3f5QzCrQbKbQjg==",
    p521: "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAFFliGgqTcN85UGBCYAMT7frUj6FMbdkhmOtPhT/hlv19zKYcmlr4zMOy7yytxJtx1W7Y537kwEMvtYCFtewEP6NwGObT6uCjPnvQayJezocZkZRU2xlM8Iku1z5ikjCS8bF042YKNqUyyltPSCaRSek1++i8v+KRT8/BCywHAqLf5txQ==",
    ed25519: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDEp6sWFHt/QKy9UkBsspIX146n67o6jR39GgiQL8mR2",
};

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
            sentryDsn: CANARY.sentryDsn,
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
