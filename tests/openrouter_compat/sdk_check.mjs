// The official TypeScript SDK (@openrouter/sdk) against a live reelgate: run by test_typescript_sdk.py with
// REELGATE_URL, REELGATE_KEY and FIRST_FRAME (a PNG data URL) set; prints one JSON object of what it saw.
import { OpenRouter } from "@openrouter/sdk";
import * as errors from "@openrouter/sdk/models/errors";

const client = new OpenRouter({
  apiKey: process.env.REELGATE_KEY,
  serverURL: `${process.env.REELGATE_URL}/api/v1`,
  retryConfig: { strategy: "none" },
});

async function poll(jobId) {
  for (let i = 0; i < 150; i++) {
    const job = await client.videoGeneration.getGeneration({ jobId });
    if (["completed", "failed", "cancelled", "expired"].includes(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`job ${jobId} did not finish`);
}

async function bytesOf(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function refused(call) {
  try {
    await call();
    return null;
  } catch (error) {
    return {
      name: error.constructor.name,
      isOpenRouterError: error instanceof errors.OpenRouterError,
      statusCode: error.statusCode,
      code: error.error?.code ?? null,
      message: error.error?.message ?? error.message,
    };
  }
}

const seen = {};
const models = await client.videoGeneration.listVideosModels();
seen.models = models.data.map((m) => ({
  id: m.id,
  durations: m.supportedDurations,
  frames: m.supportedFrameImages,
  price720p5s: m.pricingSkus?.["720p-5s"] ?? null,
}));

const text = await client.videoGeneration.generate({
  videoGenerationRequest: { model: "sandbox-t2v", prompt: "a red fox running through snow", duration: 2, resolution: "720p" },
});
seen.submitted = { status: text.status, pollingUrl: text.pollingUrl };
const done = await poll(text.id);
seen.text = { status: done.status, cost: done.usage?.cost ?? null, unsignedUrls: done.unsignedUrls };
const video = await bytesOf(await client.videoGeneration.getVideoContent({ jobId: text.id, index: 0 }));
seen.textVideo = { bytes: video.length, ftyp: video.subarray(4, 8).toString("latin1") };

const image = await client.videoGeneration.generate({
  videoGenerationRequest: {
    model: "sandbox-i2v",
    prompt: "the red square slowly drifts",
    duration: 1,
    frameImages: [{ type: "image_url", imageUrl: { url: process.env.FIRST_FRAME }, frameType: "first_frame" }],
  },
});
seen.image = { status: (await poll(image.id)).status };

const failed = await client.videoGeneration.generate({
  videoGenerationRequest: { model: "sandbox-t2v", prompt: "a fox that will not render [fail]", duration: 1 },
});
const failedJob = await poll(failed.id);
seen.failed = { status: failedJob.status, error: failedJob.error ?? null };

seen.badRequest = await refused(() =>
  client.videoGeneration.generate({
    videoGenerationRequest: { model: "sandbox-t2v", prompt: "a red fox running through snow", duration: 99 },
  }),
);
seen.tooExpensive = await refused(() =>
  client.videoGeneration.generate({
    videoGenerationRequest: { model: "sandbox-t2v", prompt: "a red fox running through snow", duration: 10, resolution: "1080p" },
  }),
);
seen.unknownJob = await refused(() => client.videoGeneration.getGeneration({ jobId: "gen_does_not_exist" }));
console.log(JSON.stringify(seen));
