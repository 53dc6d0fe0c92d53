// ESLint for web_client/: plain browser ES modules, no build step (make lint).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["web_client/vendor/", ".venv/", "node_modules/"] },
  js.configs.recommended,
  {
    files: ["web_client/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      "no-undef": "error",
      "no-unused-vars": "error",
    },
  },
  {
    files: ["web_client/e2ee-worker.js"],
    languageOptions: { globals: { ...globals.worker } },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
