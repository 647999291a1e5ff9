import { defineConfig } from "drizzle-kit";

/** `bunx drizzle-kit generate` writes SQL migrations for internal/store/schema.ts into migrations/. */
export default defineConfig({
  dialect: "sqlite",
  schema: "./internal/store/schema.ts",
  out: "./migrations",
});
