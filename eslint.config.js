import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Configuration is read once, in gateway/config.ts; nothing else may reach for the environment.
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration through gateway/config.ts.' }],
    },
  },
  {
    files: ['gateway/config.ts', 'beacon-agent/config.ts', 'tests/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
