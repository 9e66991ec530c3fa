import type { StepType } from '../core/definition-schema.ts';
import { agentStep } from './agent.ts';
import { attachStep } from './attach.ts';
import { conditionStep } from './condition.ts';
import { delayStep } from './delay.ts';
import { httpStep } from './http.ts';
import { imageStep } from './image.ts';
import { reviewStep } from './review.ts';
import { transformStep } from './transform.ts';
import type { StepExecutor } from './types.ts';
import { websiteStep } from './website.ts';

/** One executor per step type; a new type in the schema does not compile until it is here. */
export const executors: Readonly<Record<StepType, StepExecutor>> = {
  transform: transformStep,
  condition: conditionStep,
  delay: delayStep,
  http: httpStep,
  agent: agentStep,
  image: imageStep,
  review: reviewStep,
  attach: attachStep,
  website: websiteStep,
};
