CREATE TABLE `applied` (
	`id` integer PRIMARY KEY NOT NULL,
	`plan_json` text NOT NULL,
	`plan_hash` text NOT NULL,
	`applied_at` integer NOT NULL,
	`report_json` text,
	`capabilities_json` text,
	CONSTRAINT "applied_singleton" CHECK("applied"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE `clusters` (
	`name` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`version` integer NOT NULL,
	`deleted` integer DEFAULT 0 NOT NULL,
	`network_type` text,
	`ip_family` text,
	`pod_cidrs` text,
	`service_cidrs` text,
	`global_cidrs` text,
	`bridge_cidrs` text,
	`local_cidrs` text,
	`mtu` integer,
	CONSTRAINT "clusters_deleted_bool" CHECK("clusters"."deleted" IN (0, 1))
);
--> statement-breakpoint
CREATE INDEX `clusters_owner_version` ON `clusters` (`owner`,`version`);--> statement-breakpoint
CREATE TABLE `exec_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`started_at` integer NOT NULL,
	`ended_at` integer,
	`principal` text NOT NULL,
	`remote_addr` text,
	`endpoint` text,
	`command` text NOT NULL,
	`args` text DEFAULT '[]' NOT NULL,
	`cwd` text,
	`tty` integer DEFAULT 0 NOT NULL,
	`exit_code` integer,
	`signal` text,
	`duration_ms` integer,
	`bytes_in` integer DEFAULT 0 NOT NULL,
	`bytes_out` integer DEFAULT 0 NOT NULL,
	`error` text
);
--> statement-breakpoint
CREATE INDEX `exec_sessions_started_at` ON `exec_sessions` (`started_at`);--> statement-breakpoint
CREATE TABLE `members` (
	`name` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`incarnation` integer DEFAULT 0 NOT NULL,
	`address` text,
	`updated_at` integer NOT NULL,
	CONSTRAINT "members_state" CHECK("members"."state" IN ('alive', 'suspect', 'dead', 'left'))
);
--> statement-breakpoint
CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `node_status` (
	`name` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`version` integer NOT NULL,
	`deleted` integer DEFAULT 0 NOT NULL,
	`endpoint` text,
	`cert_fingerprint` text,
	`agent_version` text,
	`started_at` integer,
	`macs` text,
	CONSTRAINT "node_status_deleted_bool" CHECK("node_status"."deleted" IN (0, 1))
);
--> statement-breakpoint
CREATE INDEX `node_status_owner_version` ON `node_status` (`owner`,`version`);--> statement-breakpoint
CREATE TABLE `nodes` (
	`name` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`version` integer NOT NULL,
	`deleted` integer DEFAULT 0 NOT NULL,
	`cluster` text,
	`ipv4` text,
	`ipv6` text,
	`pod_cidrs` text,
	`gateway_candidate` integer,
	`elastic_ip` text,
	`interface_name` text,
	`underlay_mtu` integer,
	CONSTRAINT "nodes_deleted_bool" CHECK("nodes"."deleted" IN (0, 1))
);
--> statement-breakpoint
CREATE INDEX `nodes_owner_version` ON `nodes` (`owner`,`version`);--> statement-breakpoint
CREATE INDEX `nodes_cluster` ON `nodes` (`cluster`);--> statement-breakpoint
CREATE TABLE `owner_digests` (
	`owner` text PRIMARY KEY NOT NULL,
	`max_version` integer NOT NULL,
	`count` integer NOT NULL,
	`hash` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `workflow_steps` (
	`workflow_id` text NOT NULL,
	`idx` integer NOT NULL,
	`name` text NOT NULL,
	`kind` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`started_at` integer,
	`ended_at` integer,
	`output_tail` text,
	`error` text,
	PRIMARY KEY(`workflow_id`, `idx`),
	FOREIGN KEY (`workflow_id`) REFERENCES `workflows`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `workflows` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`status` text NOT NULL,
	`spec_json` text NOT NULL,
	`current_step` integer DEFAULT 0 NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`error` text,
	CONSTRAINT "workflows_kind" CHECK("workflows"."kind" IN ('join', 'leave')),
	CONSTRAINT "workflows_status_enum" CHECK("workflows"."status" IN ('pending', 'running', 'succeeded', 'failed', 'rolled_back'))
);
--> statement-breakpoint
CREATE INDEX `workflows_status` ON `workflows` (`status`);