import { describe, expect, it } from "vitest";
import { imageProblem, MAX_IMAGE_BYTES } from "./files";

describe("imageProblem", () => {
  it("accepts PNG, JPEG and WebP up to 25 MB", () => {
    expect(imageProblem({ name: "a.png", type: "image/png", size: 10 })).toBeNull();
    expect(imageProblem({ name: "a.webp", type: "image/webp", size: MAX_IMAGE_BYTES })).toBeNull();
  });

  it("names the file and says what would be accepted", () => {
    expect(imageProblem({ name: "a.gif", type: "image/gif", size: 10 })).toBe(
      "a.gif is image/gif; choose a PNG, JPEG or WebP image",
    );
    expect(imageProblem({ name: "notes", type: "", size: 10 })).toBe(
      "notes is of an unknown type; choose a PNG, JPEG or WebP image",
    );
    expect(imageProblem({ name: "big.jpg", type: "image/jpeg", size: MAX_IMAGE_BYTES + 1 })).toBe(
      "big.jpg is 25.0 MB; images may be at most 25.0 MB",
    );
    expect(imageProblem({ name: "e.png", type: "image/png", size: 0 })).toBe("e.png is empty");
  });
});
