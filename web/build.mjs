// Builds every app under web/ (a folder holding main.js, and index.html and style.css if it has them) into
// web/dist/<app>/ with esbuild: one minified bundle a page, no CDN, nothing fetched at run time.
// The built files are committed; `node web/build.mjs --check` (run by scripts/test.sh) fails when they differ
// from a fresh build, as gen_protos.sh --check does for the gRPC stubs.
import { build } from "esbuild";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, cpSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes("--check");
const apps = readdirSync(root).filter(
  (d) => d !== "dist" && d !== "node_modules" && statSync(join(root, d)).isDirectory() && existsSync(join(root, d, "main.js")),
);

async function buildInto(out) {
  for (const app of apps) {
    const src = join(root, app);
    await build({
      entryPoints: [join(src, "main.js"), ...(existsSync(join(src, "style.css")) ? [join(src, "style.css")] : [])],
      bundle: true,
      minify: true,
      format: "esm",
      // Safari 14.0 mishandles some destructuring (esbuild refuses to emit it); 14.1 / iOS 14.5 are fine.
      target: ["es2020", "safari14.1", "ios14.5"],
      outdir: join(out, app),
      entryNames: "[name]",
      legalComments: "none",
      logLevel: "error",
    });
    for (const f of readdirSync(src)) {
      if (f.endsWith(".html") || f.endsWith(".svg") || f.endsWith(".png")) cpSync(join(src, f), join(out, app, f));
    }
  }
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

if (check) {
  const tmp = mkdtempSync(join(tmpdir(), "mintpipe-web-"));
  try {
    await buildInto(tmp);
    const want = listFiles(tmp);
    const have = listFiles(join(root, "dist"));
    const differ = want.filter((f) => !have.includes(f) || !readFileSync(join(tmp, f)).equals(readFileSync(join(root, "dist", f))));
    const extra = have.filter((f) => !want.includes(f));
    if (differ.length || extra.length) {
      console.error(`web/dist is out of date (${[...differ, ...extra].join(", ")}): run node web/build.mjs and commit`);
      process.exit(1);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  rmSync(join(root, "dist"), { recursive: true, force: true });
  await buildInto(join(root, "dist"));
  console.log(`built ${apps.join(", ") || "no apps"} into ${relative(process.cwd(), join(root, "dist")) || "."}`);
}
