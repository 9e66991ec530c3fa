/** What agent, review and image steps need from a model provider. */

export interface ChatRequest {
  model: string | undefined;
  system: string | undefined;
  prompt: string;
  temperature: number | undefined;
  maxTokens: number | undefined;
  /** Same across retries of one step of one run; sent where the API accepts one. */
  idempotencyKey: string;
  signal: AbortSignal;
}

export interface ChatResponse {
  text: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
}

export interface ImageRequest {
  model: string | undefined;
  prompt: string;
  size: string;
  idempotencyKey: string;
  signal: AbortSignal;
}

export interface ImageResponse {
  /** Where the image can be fetched, or a data: URL. */
  url: string;
  contentType: string;
  model: string;
}

export interface Provider {
  readonly name: string;
  /** True only for the offline `simulated` provider; runs that used it are labelled. */
  readonly simulated: boolean;
  chat(request: ChatRequest): Promise<ChatResponse>;
  image(request: ImageRequest): Promise<ImageResponse>;
}
