import { AjvCompiler } from '@fastify/ajv-compiler'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { FastifyServerOptions } from 'fastify'

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
type BuildSerializer = NonNullable<CompilersFactory['buildSerializer']>

/**
 * Fastify's own schema compilers, shared by every app this process builds instead of made anew
 * per instance. The catalog's schemas are the same objects in each app, and compiling them
 * (Ajv validators, fast-json-stringify serializers) was most of what building an app cost: the
 * test suite builds hundreds. The validator pool already keeps one Ajv per set of shared schemas
 * and options, and Ajv compiles a schema object once; serializers are kept per schema object.
 */
const buildValidator = AjvCompiler()
const selectSerializer = SerializerSelector()
const serializerPools = new Map<string, WeakMap<object, ReturnType<ReturnType<BuildSerializer>>>>()

function serializerPool (externalSchemas: unknown, options: unknown): WeakMap<object, ReturnType<ReturnType<BuildSerializer>>> {
  const key = JSON.stringify([externalSchemas, options])
  let pool = serializerPools.get(key)
  if (pool === undefined) {
    pool = new WeakMap()
    serializerPools.set(key, pool)
  }
  return pool
}

const buildSerializer: BuildSerializer = (externalSchemas, options) => {
  const compile = selectSerializer(externalSchemas, options)
  const pool = serializerPool(externalSchemas, options)
  return (route) => {
    const schema = route.schema
    if (typeof schema !== 'object' || schema === null) return compile(route)
    let serializer = pool.get(schema)
    if (serializer === undefined) {
      serializer = compile(route)
      pool.set(schema, serializer)
    }
    return serializer
  }
}

export const sharedSchemaCompilers: CompilersFactory = { buildValidator, buildSerializer }
