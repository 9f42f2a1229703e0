# syntax=docker/dockerfile:1
# synapse-admin-gateway: build stage compiles TypeScript; the runtime stage holds only the
# production dependencies and dist/, and runs as the unprivileged `node` user.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# A place for AUDIT_LOG_FILE that the node user may write (a named volume inherits it).
RUN mkdir -p /var/log/gateway && chown node:node /var/log/gateway
USER node
EXPOSE 8080
# No curl in the image: Node's fetch checks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself as PID 1 (not npm): it receives SIGTERM and shuts down gracefully.
CMD ["node", "dist/server.js"]
