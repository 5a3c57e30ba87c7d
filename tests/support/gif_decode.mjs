// An independent GIF decoder for the tests: omggif (npm), pure JavaScript, none of our code or Pillow's.
// Usage: node gif_decode.mjs FILE.gif
// Writes to stdout, for each frame in turn, the whole canvas as RGBA after that frame is drawn over the ones
// before it (transparent pixels leave what was there: disposal "do not dispose"); then, on stderr, one JSON
// line: {"width", "height", "loop", "frames": [{"x", "y", "width", "height", "delay", "transparent_index",
// "disposal"}]}.
import { readFileSync, writeSync } from "node:fs";
import omggif from "omggif";

const reader = new omggif.GifReader(readFileSync(process.argv[2]));
const canvas = new Uint8Array(reader.width * reader.height * 4);
const frames = [];
for (let i = 0; i < reader.numFrames(); i++) {
  const info = reader.frameInfo(i);
  reader.decodeAndBlitFrameRGBA(i, canvas);
  let written = 0;
  while (written < canvas.length) written += writeSync(1, canvas, written);
  frames.push({ x: info.x, y: info.y, width: info.width, height: info.height, delay: info.delay,
                transparent_index: info.transparent_index, disposal: info.disposal });
}
process.stderr.write(JSON.stringify({ width: reader.width, height: reader.height, loop: reader.loopCount(),
                                      frames }) + "\n");
