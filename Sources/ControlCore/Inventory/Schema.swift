import GRDB

/// The inventory's schema as a history of migrations. A shipped migration is never edited: a change
/// is a new migration appended here.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1", migrate: v1)
        return migrator
    }

    private static func v1(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE nodes (
                id TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63),
                address TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('UP', 'DOWN', 'MAINTENANCE', 'UNKNOWN')),
                maintenance BOOLEAN NOT NULL DEFAULT 0 CHECK (maintenance IN (0, 1)),
                inventory TEXT CHECK (inventory IS NULL OR json_valid(inventory)),
                node_version TEXT NOT NULL DEFAULT '',
                protocol_version INTEGER NOT NULL DEFAULT 0 CHECK (protocol_version >= 0),
                last_seen DATETIME,
                created_at DATETIME NOT NULL,
                CHECK (status <> 'MAINTENANCE' OR maintenance = 1)
            );

            CREATE TABLE images (
                id TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63),
                kind TEXT NOT NULL CHECK (kind IN ('kernel', 'initramfs', 'disk')),
                path TEXT NOT NULL CHECK (substr(path, 1, 1) = '/'),
                size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
                sha256 TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
                created_at DATETIME NOT NULL
            );

            CREATE TABLE image_nodes (
                image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
                node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
                PRIMARY KEY (image_id, node_id)
            );
            CREATE INDEX image_nodes_node ON image_nodes(node_id);

            CREATE TABLE networks (
                id TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
                node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
                kind TEXT NOT NULL CHECK (kind IN ('bridge', 'macvtap')),
                parent TEXT NOT NULL CHECK (length(parent) BETWEEN 1 AND 15),
                mtu INTEGER NOT NULL CHECK (mtu BETWEEN 68 AND 65535),
                created_at DATETIME NOT NULL,
                UNIQUE (name, node_id)
            );

            CREATE TABLE rate_limit_groups (
                id TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63),
                limiter TEXT NOT NULL CHECK (json_valid(limiter)),
                created_at DATETIME NOT NULL
            );

            CREATE TABLE vms (
                id TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63),
                spec TEXT NOT NULL CHECK (json_valid(spec)),
                vmm TEXT NOT NULL CHECK (vmm IN ('cloud-hypervisor', 'qemu')),
                desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'paused', 'stopped', 'deleted')),
                observed_state TEXT NOT NULL
                    CHECK (observed_state IN ('pending', 'created', 'running', 'paused', 'stopped', 'failed', 'unknown')),
                node_id TEXT REFERENCES nodes(id) ON DELETE RESTRICT,
                pinned_node_id TEXT REFERENCES nodes(id) ON DELETE RESTRICT,
                vcpus INTEGER NOT NULL CHECK (vcpus > 0),
                memory_bytes INTEGER NOT NULL CHECK (memory_bytes > 0),
                hugepage_size INTEGER CHECK (hugepage_size IS NULL OR hugepage_size > 0),
                boot_time_ms REAL CHECK (boot_time_ms IS NULL OR boot_time_ms >= 0),
                created_at DATETIME NOT NULL,
                updated_at DATETIME NOT NULL
            );
            CREATE INDEX vms_node ON vms(node_id);

            CREATE TABLE nics (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
                device_id TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('tap', 'macvtap', 'vhost-user')),
                network TEXT,
                mac TEXT,
                spec TEXT NOT NULL CHECK (json_valid(spec)),
                UNIQUE (vm_id, device_id)
            );

            CREATE TABLE disks (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
                device_id TEXT NOT NULL,
                image_id TEXT REFERENCES images(id) ON DELETE RESTRICT,
                path TEXT,
                readonly BOOLEAN NOT NULL CHECK (readonly IN (0, 1)),
                spec TEXT NOT NULL CHECK (json_valid(spec)),
                UNIQUE (vm_id, device_id)
            );
            CREATE INDEX disks_image ON disks(image_id);

            CREATE TABLE operations (
                id TEXT PRIMARY KEY NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('create_vm', 'start_vm', 'stop_vm', 'pause_vm', 'resume_vm',
                    'reboot_vm', 'delete_vm', 'add_nic', 'add_disk', 'add_image')),
                status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
                vm_id TEXT REFERENCES vms(id) ON DELETE SET NULL,
                node_id TEXT REFERENCES nodes(id) ON DELETE SET NULL,
                client_request_id TEXT UNIQUE CHECK (client_request_id IS NULL OR length(client_request_id) BETWEEN 1 AND 128),
                request TEXT NOT NULL CHECK (json_valid(request)),
                request_digest TEXT NOT NULL,
                result TEXT CHECK (result IS NULL OR json_valid(result)),
                error_code TEXT,
                error_message TEXT,
                error_field TEXT,
                progress REAL CHECK (progress IS NULL OR progress BETWEEN 0 AND 1),
                attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                created_at DATETIME NOT NULL,
                updated_at DATETIME NOT NULL,
                finished_at DATETIME,
                CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL)),
                CHECK (status <> 'failed' OR (error_code IS NOT NULL AND error_message IS NOT NULL))
            );
            CREATE INDEX operations_open ON operations(status) WHERE status IN ('pending', 'running');

            CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                at DATETIME NOT NULL,
                actor TEXT NOT NULL CHECK (length(actor) > 0),
                action TEXT NOT NULL CHECK (length(action) > 0),
                subject TEXT NOT NULL
                    CHECK (subject IN ('node', 'vm', 'image', 'network', 'rate_limit_group', 'operation', 'control')),
                subject_id TEXT,
                message TEXT NOT NULL
            );
            """)
    }
}
