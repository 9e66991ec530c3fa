/** Workflows for budget tests: agent steps on a priced model (openai/gpt-4.1-mini). */

/** One priced call: about 0.4·(a few tokens) + 1.6·100 per 1M tokens ≈ $0.00016 estimated. */
export const BUDGETED = {
  name: 'budgeted',
  steps: {
    ask: { type: 'agent', provider: 'openai', model: 'gpt-4.1-mini', prompt: 'Say hi', max_tokens: 100, stream: false },
    after: { type: 'transform', needs: ['ask'], expr: '$ask.text' },
  },
  outputs: { text: '$after' },
};

/** Two priced calls side by side, then a join. */
export const PARALLEL = {
  name: 'budgeted parallel',
  steps: {
    left: { type: 'agent', provider: 'openai', model: 'gpt-4.1-mini', prompt: 'Left', max_tokens: 100, stream: false },
    right: { type: 'agent', provider: 'openai', model: 'gpt-4.1-mini', prompt: 'Right', max_tokens: 100, stream: false },
    join: { type: 'transform', needs: ['left', 'right'], expr: '$left.text & $right.text' },
  },
  outputs: { text: '$join' },
};
