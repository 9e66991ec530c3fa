import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', '.weft/**', 'scratch/**', 'bench/peers/**', 'web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error',
        { selector: "CallExpression[callee.name='eval']", message: 'eval is forbidden: expressions go through src/core/expressions.ts' },
        { selector: "NewExpression[callee.name='Function']", message: 'Function constructor is forbidden' }],
      'no-restricted-imports': ['error', { paths: [{ name: 'node:vm', message: 'vm is not a sandbox' }, { name: 'vm', message: 'vm is not a sandbox' }] }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['node:*', 'pg', '@electric-sql/*', '../store/*', '../engine/*', '../steps/*', '../providers/*', '../cli/*'], message: 'src/core is pure: no I/O imports' }] }],
    },
  },
  { files: ['**/*.mjs', '**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
);
