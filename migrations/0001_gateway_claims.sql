ALTER TABLE `node_status` ADD `gateway_for` text;--> statement-breakpoint
ALTER TABLE `node_status` ADD `gateway_since` integer;