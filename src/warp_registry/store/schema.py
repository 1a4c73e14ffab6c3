"""The versioned schema. Each migration is a list of statements valid on both engines.

`{C}` marks text columns that are sorted on: on PostgreSQL they get the "C" collation so
that both engines order strings byte by byte, and lists page identically on either.
Timestamps are BIGINT microseconds (see `warp_registry.clock`); flags are INTEGER 0/1.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: the foundation
    [
        """CREATE TABLE accounts (
            id TEXT{C} PRIMARY KEY,
            name TEXT NOT NULL,
            multi_user INTEGER NOT NULL DEFAULT 0,
            ipv6_prefix TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE api_tokens (
            id TEXT{C} PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            permission TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        """CREATE TABLE api_token_accounts (
            token_id TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            PRIMARY KEY (token_id, account_id)
        )""",
        """CREATE TABLE admins (
            id TEXT{C} PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            api_key_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        """CREATE TABLE admin_accounts (
            admin_id TEXT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            PRIMARY KEY (admin_id, account_id)
        )""",
        """CREATE TABLE users (
            id TEXT{C} PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            email TEXT{C},
            name TEXT{C} NOT NULL DEFAULT '',
            groups TEXT NOT NULL DEFAULT '[]',
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        "CREATE UNIQUE INDEX users_account_email ON users (account_id, email)",
        """CREATE TABLE device_profiles (
            id TEXT{C} PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            is_default INTEGER NOT NULL DEFAULT 0,
            name TEXT{C},
            description TEXT,
            match TEXT,
            precedence INTEGER,
            enabled INTEGER NOT NULL DEFAULT 1,
            profile_type TEXT NOT NULL DEFAULT 'warp',
            settings TEXT NOT NULL DEFAULT '{}',
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        """CREATE UNIQUE INDEX device_profiles_one_default
            ON device_profiles (account_id) WHERE is_default = 1""",
        """CREATE TABLE devices (
            id TEXT{C} PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            name TEXT{C} NOT NULL,
            client_version TEXT{C},
            device_type TEXT,
            model TEXT,
            manufacturer TEXT,
            serial_number TEXT,
            hardware_id TEXT,
            mac_address TEXT,
            os_version TEXT,
            os_version_extra TEXT,
            install_id TEXT,
            public_ip TEXT,
            tags TEXT NOT NULL DEFAULT '{}',
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            last_seen_at BIGINT,
            last_seen_user_id TEXT,
            last_seen_registration_id TEXT
        )""",
        "CREATE INDEX devices_account_created ON devices (account_id, created_at, id)",
        "CREATE INDEX devices_serial ON devices (account_id, serial_number)",
        """CREATE TABLE registrations (
            id TEXT{C} PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
            user_email TEXT{C} NOT NULL DEFAULT '',
            user_name TEXT{C} NOT NULL DEFAULT '',
            service_token_id TEXT,
            policy_id TEXT,
            policy_name TEXT NOT NULL DEFAULT '',
            policy_assigned_at BIGINT NOT NULL,
            key TEXT NOT NULL,
            key_type TEXT,
            tunnel_type TEXT,
            registration_type TEXT NOT NULL,
            virtual_ipv4 TEXT,
            virtual_ipv6 TEXT,
            client_token_hash TEXT UNIQUE,
            override_secret TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            last_seen_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        # One index per sort key, each ending in id: the keyset (value, id) of every
        # sort order is then an index range, at any page depth.
        "CREATE INDEX reg_account_created ON registrations (account_id, created_at, id)",
        "CREATE INDEX reg_account_seen ON registrations (account_id, last_seen_at, id)",
        "CREATE INDEX reg_account_email ON registrations (account_id, user_email, id)",
        "CREATE INDEX reg_account_name ON registrations (account_id, user_name, id)",
        "CREATE INDEX reg_account_id ON registrations (account_id, id)",
        "CREATE INDEX reg_user ON registrations (account_id, user_id, created_at, id)",
        "CREATE INDEX reg_device ON registrations (device_id, created_at, id)",
        "CREATE INDEX reg_policy ON registrations (account_id, policy_id)",
        "CREATE INDEX reg_key ON registrations (key)",
        # Virtual IPs are unique per account; NULLs (no address yet) never collide.
        "CREATE UNIQUE INDEX reg_vip4 ON registrations (account_id, virtual_ipv4)",
        "CREATE UNIQUE INDEX reg_vip6 ON registrations (account_id, virtual_ipv6)",
    ],
    # 2: enrollment, the WARP client protocol (store/enrollment.py, docs/enrollment.md)
    [
        # Key pairs the registry holds per account: `access` signs the Access JWTs that
        # enrollment accepts; `wireguard` and `masque` are the peer keys clients are given.
        """CREATE TABLE account_keys (
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            key_id TEXT NOT NULL UNIQUE,
            private_key TEXT NOT NULL,
            public_key TEXT NOT NULL,
            audience TEXT NOT NULL DEFAULT '',
            created_at BIGINT NOT NULL,
            PRIMARY KEY (account_id, purpose)
        )""",
        # Access service tokens (CF-Access-Client-Id / CF-Access-Client-Secret).
        """CREATE TABLE service_tokens (
            id TEXT{C} PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            client_id TEXT NOT NULL UNIQUE,
            secret_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        # Each Access JWT enrolls once: its jti is kept until the JWT has expired.
        """CREATE TABLE access_jwt_uses (
            account_id TEXT NOT NULL,
            jti TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (account_id, jti)
        )""",
        "CREATE INDEX access_jwt_uses_expiry ON access_jwt_uses (expires_at)",
        # What the client sent at enrollment and sees again on every GET; one row per
        # registration made through the client API, gone with its registration.
        """CREATE TABLE client_registrations (
            registration_id TEXT PRIMARY KEY REFERENCES registrations(id) ON DELETE CASCADE,
            client_type TEXT NOT NULL DEFAULT '',
            locale TEXT NOT NULL DEFAULT '',
            fcm_token TEXT NOT NULL DEFAULT '',
            tos BIGINT,
            warp_enabled INTEGER NOT NULL DEFAULT 1
        )""",
        "CREATE INDEX devices_install ON devices (account_id, install_id)",
    ],
    # 3: physical devices (store/devices.py, docs/devices.md). The list sorts on keys
    # that may be unknown (client version, last seen time and user); keysets need NOT
    # NULL columns for an index range on both engines, so each device carries its sort
    # keys and its count of active registrations, kept by `refresh_devices` in the
    # transaction of every write to the device or its registrations.
    [
        "ALTER TABLE devices ADD COLUMN active_registrations INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE devices ADD COLUMN sort_client_version TEXT{C} NOT NULL DEFAULT ''",
        "ALTER TABLE devices ADD COLUMN sort_last_seen_at BIGINT NOT NULL DEFAULT -1",
        "ALTER TABLE devices ADD COLUMN sort_last_seen_email TEXT{C} NOT NULL DEFAULT ''",
        """UPDATE devices SET
            active_registrations = (SELECT COUNT(*) FROM registrations r
                WHERE r.device_id = devices.id AND r.revoked_at IS NULL),
            sort_client_version = COALESCE(client_version, ''),
            sort_last_seen_at = COALESCE(last_seen_at, -1),
            sort_last_seen_email = COALESCE((SELECT lower(u.email) FROM users u
                WHERE u.id = devices.last_seen_user_id), '')""",
        # One index per sort key, each ending in id (devices_account_created exists).
        "CREATE INDEX devices_account_id ON devices (account_id, id)",
        "CREATE INDEX devices_account_name ON devices (account_id, name, id)",
        """CREATE INDEX devices_account_version
            ON devices (account_id, sort_client_version, id)""",
        """CREATE INDEX devices_account_email
            ON devices (account_id, sort_last_seen_email, id)""",
        "CREATE INDEX devices_account_seen ON devices (account_id, sort_last_seen_at, id)",
        """CREATE INDEX devices_account_active
            ON devices (account_id, active_registrations, id)""",
        # Tags as rows, for the `tag=key:value` filter on both engines; `devices.tags`
        # keeps the JSON object the API shows. No tags existed before this version.
        """CREATE TABLE device_tags (
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (device_id, key)
        )""",
    ],
    # 4: device settings profiles (store/profiles.py, docs/profiles.md). Two custom
    # profiles of an account never share a precedence, so the order in which profiles
    # are tried is always defined; the index has the last word when two writers race.
    [
        """CREATE UNIQUE INDEX device_profiles_precedence
            ON device_profiles (account_id, precedence) WHERE is_default = 0""",
    ],
    # 5: the control plane for testers (store/control.py, docs/control-plane.md). None of
    # these tables is registry data: export/import and reset leave them out.
    [
        # Name -> value: the admin token's hash, the server clock, the journal size and a
        # version that changes with every control write (workers reload when it moves).
        """CREATE TABLE control_settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        # Fixed-window request counts per credential fingerprint, for the rate limiter.
        """CREATE TABLE rate_limit_counts (
            bucket TEXT NOT NULL,
            window_start BIGINT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (bucket, window_start)
        )""",
        """CREATE TABLE fault_rules (
            id TEXT{C} PRIMARY KEY,
            created_at BIGINT NOT NULL,
            spec TEXT NOT NULL,
            remaining BIGINT,
            seen BIGINT NOT NULL DEFAULT 0,
            fired BIGINT NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE journal (
            id TEXT{C} PRIMARY KEY,
            at BIGINT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            query TEXT NOT NULL,
            credential_id TEXT,
            status INTEGER NOT NULL,
            duration_us BIGINT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            request_headers TEXT NOT NULL,
            request_body TEXT NOT NULL,
            response_body TEXT NOT NULL
        )""",
        "CREATE INDEX journal_at ON journal (at, id)",
    ],
    # 6: enrollment finds the device by serial number or install id, oldest first. With
    # (created_at, id) in the index, the lookup and its ORDER BY are one index range;
    # without it SQLite may walk the account's devices in created_at order instead.
    [
        "DROP INDEX devices_serial",
        "CREATE INDEX devices_serial ON devices (account_id, serial_number, created_at, id)",
        "DROP INDEX devices_install",
        "CREATE INDEX devices_install ON devices (account_id, install_id, created_at, id)",
    ],
    # 7: each account's address marks, the host numbers enrollment tries first
    # (domain.enrollment.AddressPool). NULL is "not known": the next enrollment reads the
    # account's addresses once and sets it, so existing accounts need no backfill.
    [
        "ALTER TABLE accounts ADD COLUMN next_ipv4_host BIGINT",
        "ALTER TABLE accounts ADD COLUMN next_ipv6_host BIGINT",
    ],
]


def render(statement: str, dialect: str) -> str:
    """Fill in the dialect-specific parts of a migration statement."""
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""
    return statement.replace("{C}", collate)


LATEST_VERSION = len(MIGRATIONS)
