# syntax=docker/dockerfile:1
# certrotator: one image for the controller (Deployment, runs as 65532) and the
# agent (DaemonSet, runs as root with hostPID; restarts go through nsenter).
#   docker build -t certrotator .
# The build stages' commands are run by test/image/build-stage.e2e.test.ts.

# 1. Compile TypeScript (dev dependencies: typescript and the types).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# 2. Production dependencies only.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# 3. Runtime: Node 24 on Debian slim. util-linux (nsenter, for the agent's
#    restarts in the host's namespaces) is an Essential package there, so it is
#    already in the base image; systemctl and docker are the host's, reached
#    through nsenter, never installed here.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# Non-root by default (the controller); the agent's pod sets runAsUser: 0.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["--help"]
