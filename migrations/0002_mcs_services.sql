CREATE TABLE `service_endpoints` (
	`name` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`version` integer NOT NULL,
	`deleted` integer DEFAULT 0 NOT NULL,
	`namespace` text,
	`service` text,
	`cluster` text,
	`slice` text,
	`address_type` text,
	`ports` text,
	`endpoints` text,
	CONSTRAINT "service_endpoints_deleted_bool" CHECK("service_endpoints"."deleted" IN (0, 1))
);
--> statement-breakpoint
CREATE INDEX `service_endpoints_owner_version` ON `service_endpoints` (`owner`,`version`);--> statement-breakpoint
CREATE INDEX `service_endpoints_service` ON `service_endpoints` (`namespace`,`service`);--> statement-breakpoint
CREATE TABLE `service_imports` (
	`name` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`version` integer NOT NULL,
	`deleted` integer DEFAULT 0 NOT NULL,
	`namespace` text,
	`service` text,
	`type` text,
	`ips` text,
	`ports` text,
	`session_affinity` text,
	`affinity_timeout` integer,
	`clusters` text,
	CONSTRAINT "service_imports_deleted_bool" CHECK("service_imports"."deleted" IN (0, 1))
);
--> statement-breakpoint
CREATE INDEX `service_imports_owner_version` ON `service_imports` (`owner`,`version`);